"""Where a university office reads each of its students stands: the stage matches the
application's status beside it (a student who declined reads "declined", not "applied")."""

from __future__ import annotations

from typing import Any

import pytest

from services.portal.labels import LABELS
from services.portal.pages.university import STAGE_OF_STATE, STAGES, stage


def student(*states: str, department: str | None = "EE") -> dict[str, Any]:
    return {"department": department, "applications": [{"state": s} for s in states]}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("submitted", "applied"),
        ("proposed", "proposed"),
        ("placed", "placed"),
        ("declined", "declined"),
        ("expired", "expired"),
        ("cancelled", "cancelled"),
        ("not_matched", "not_matched"),
        ("withdrawn", "withdrawn"),
    ],
)
def test_one_application_reads_as_its_status(state: str, expected: str) -> None:
    assert stage(student(state)) == expected


def test_the_application_that_has_gone_furthest_stands_for_the_student() -> None:
    # A withdrawn application and a new one in another cohort: the live one counts.
    assert stage(student("withdrawn", "submitted")) == "applied"
    # Declined in one round, proposed again in the next cohort.
    assert stage(student("declined", "proposed")) == "proposed"
    assert stage(student("cancelled", "placed")) == "placed"


def test_before_any_application() -> None:
    assert stage(student()) == "profile"
    assert stage(student(department=None)) == "invited"


def test_every_stage_and_status_has_words() -> None:
    assert set(STAGE_OF_STATE.values()) <= set(STAGES)
    assert set(STAGES) == set(LABELS["stage"])
    assert set(STAGE_OF_STATE) == set(LABELS["application_state"])
