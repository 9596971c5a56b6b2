"""schemathesis against each service's OpenAPI: generated requests (valid and invalid) from a
coordinator, a student and a company, on real uvicorn servers over the real Kafka and MongoDB.
No answer may be a server error, and none may contradict the documented schema (status codes,
content types, bodies, auth enforcement, invalid input refused).

The example count per operation (SCHEMATHESIS_MAX_EXAMPLES, default 15) keeps this within a few
minutes on a 2-core CI machine; raise it locally to search harder.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI

from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.matching.app import MatchingSettings
from services.matching.app import create_app as create_matching
from services.notifications.app import NotificationsSettings
from services.notifications.app import create_app as create_notifications
from shared.auth import Role
from tests.infra import Infra
from tests.serving import served

pytestmark = [
    pytest.mark.integration,
    # Raised inside schemathesis's own strategies, not ours.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15"))
TAG = "contract"

SERVICES: dict[str, tuple[type[Any], Callable[[Any], FastAPI]]] = {
    "applications": (ApplicationsSettings, create_applications),
    "matching": (MatchingSettings, create_matching),
    "notifications": (NotificationsSettings, create_notifications),
}
CALLERS = ("coordinator", "student", "company")


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261126,  # the same cases in every run: a failure reproduces
        # The bearer token is ours to send (one per caller), not generated data to mutate.
        "generation": {"max-examples": MAX_EXAMPLES, "with-security-parameters": False},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # The schema cannot say everything that makes input valid: cross-field rules (end
            # after start, not in the past), references to things that must exist, states (an
            # open window). Those are 422 with the field and the reason, by design; schema-level
            # mistakes are what negative_data_rejection and the conformance checks catch.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
            },
        },
    }
)


@pytest.fixture(scope="module")
def bases(infra: Infra) -> Iterator[dict[str, str]]:
    with ExitStack() as stack:
        urls = {}
        for name, (settings_cls, create) in SERVICES.items():
            settings = infra.settings(settings_cls, tag=TAG, database=f"{TAG}_{name}")
            urls[name] = stack.enter_context(served(lambda s=settings, c=create: c(s)))
        yield urls


@pytest.fixture(scope="module")
def tokens(infra: Infra, bases: dict[str, str]) -> dict[str, str]:
    """A coordinator, a student with a profile, and an approved company (so that generated
    requests can get past the first checks and reach deeper code)."""
    coordinator = infra.token(Role.COORDINATOR, "coordinator")
    with httpx.Client(base_url=bases["applications"], timeout=30) as client:
        company = client.post(
            "/companies",
            json={
                "name_ja": "契約テスト株式会社",
                "name_en": "Contract Test Co., Ltd.",
                "sector": "robotics_ai",
                "ward": "Tobata-ku",
                "address": "1-1 Sensui-machi, Tobata-ku, Kitakyushu",
                "contact": {"name": "担当 太郎", "email": "hr@contract.example"},
            },
        ).json()["id"]
        approved = client.post(
            f"/companies/{company}/approve", headers={"Authorization": f"Bearer {coordinator}"}
        )
        assert approved.status_code == 200, approved.text
    return {
        "coordinator": coordinator,
        "student": infra.token(Role.STUDENT, "stu-contract"),
        "company": infra.token(Role.COMPANY, company),
    }


def documented(name: str) -> dict[str, Any]:
    """The OpenAPI document a service serves, built from its code (no server needed)."""
    settings_cls, create = SERVICES[name]
    app = create(settings_cls(jwt_secret="only-to-build-the-openapi-document-" + "x" * 16))
    return app.openapi()


# SCHEMATHESIS_SERVICES=matching runs one service only (while working on it).
ONLY = os.environ.get("SCHEMATHESIS_SERVICES", ",".join(SERVICES)).split(",")
schemas = {
    name: schemathesis.openapi.from_dict(documented(name), config=CONFIG)
    for name in SERVICES
    if name in ONLY
}
TITLES = {schema.raw_schema["info"]["title"]: name for name, schema in schemas.items()}


@pytest.fixture(scope="module")
def api(bases: dict[str, str], tokens: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    return bases, tokens


def callers_of(case: Any) -> list[str | None]:
    """Who sends a generated case: every caller whose role the operation admits (`x-roles`
    in the document; any signed-in caller when it names none), then one it refuses (the 403
    must match the document too); nobody for a public operation."""
    operation = case.operation.definition.raw
    if not operation.get("security"):
        return [None]
    roles = operation.get("x-roles") or CALLERS
    admitted: list[str | None] = [c for c in CALLERS if c in roles]
    refused = [c for c in CALLERS if c not in roles]
    return admitted + refused[:1]


SENT: Counter[str | None] = Counter()


@schemathesis.pytest.parametrize(**schemas)
def test_every_answer_conforms_to_the_documented_schema(
    case: Any, api: tuple[dict[str, str], dict[str, str]]
) -> None:
    bases, tokens = api
    base = bases[TITLES[case.operation.schema.raw_schema["info"]["title"]]]
    for caller in callers_of(case):
        SENT[caller] += 1
        headers = {"Authorization": f"Bearer {tokens[caller]}"} if caller else {}
        case.call_and_validate(base_url=base, headers=headers)


def test_every_caller_was_heard() -> None:
    """Runs after the generated tests: each caller (and nobody, for public operations) sent
    some of the cases."""
    if sum(SENT.values()) == 0:
        pytest.skip("the generated tests did not run (deselected)")
    assert set(SENT) == {*CALLERS, None}, SENT
