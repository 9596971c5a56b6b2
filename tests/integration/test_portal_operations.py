"""The portal is operated like every service, over real sockets (the portal and the
applications service each on a uvicorn server of 127.0.0.1, real MongoDB, Kafka and SMTP
sink): a request body over HTTP_MAX_BODY_BYTES is refused with 413 and a page in the person's
language before anything reads it, and the portal serves on; GET /metrics counts requests by
route template and status, and sign-in links sent and used; each request has one access log
line (JSON) with the request id the response returned and the request's trace id."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.portal.app import create_app
from services.portal.i18n import translate_in
from services.portal.settings import PortalSettings
from shared.logs import CorrelationIds, JsonFormatter
from shared.runtime import VERSION
from shared.tracing import tracer_provider
from tests.infra import Infra, eventually, read_mailbox, serving

pytestmark = pytest.mark.integration

LIMIT = 8 * 1024
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
LINK = re.compile(r"/sign-in/verify\?token=([\w-]+)")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Portal:
    client: httpx.AsyncClient
    infra: Infra

    async def csrf(self, path: str = "/sign-in") -> str:
        page = await self.client.get(path)
        found = CSRF.search(page.text)
        assert found, page.text[:500]
        return found.group(1)

    async def scrape(self) -> Samples:
        response = await self.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples: Samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                assert sample.labels.get("service") == "portal", sample
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "service"))
                samples[(sample.name, labels)] = sample.value
        return samples

    def link_for(self, email: str) -> str | None:
        assert self.infra.mailbox is not None
        for message in reversed(read_mailbox(self.infra.mailbox)):
            if str(message["To"]) == email:
                found = LINK.search(message.get_content())
                if found:
                    return found.group(1)
        return None


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
async def portal(infra: Infra) -> AsyncIterator[Portal]:
    if infra.mailbox is None:
        pytest.skip("needs the embedded SMTP sink to read the sign-in link")
    tag = f"pops{uuid.uuid4().hex[:6]}"
    applications = create_applications(
        infra.settings(ApplicationsSettings, tag=tag, database=f"{tag}_applications")
    )
    async with serving(applications) as applications_url:
        settings = infra.settings(
            PortalSettings,
            tag=tag,
            database=f"{tag}_portal",
            applications_url=applications_url,
            smtp_host=infra.smtp_host,
            smtp_port=infra.smtp_port,
            http_max_body_bytes=LIMIT,
        )
        async with (
            serving(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            yield Portal(client, infra)


async def test_an_oversized_form_gets_413_with_a_page_and_the_portal_serves_on(
    portal: Portal,
) -> None:
    token = await portal.csrf()
    # Content-Length says it: refused before the body is read.
    refused = await portal.client.post(
        "/sign-in",
        data={"csrf_token": token, "email": "x" * (LIMIT + 1)},
        headers={"Accept-Language": "ja"},
    )
    assert refused.status_code == 413
    assert refused.headers["content-type"].startswith("text/html")
    assert translate_in("ja", "That did not work") in refused.text
    assert f"larger than the limit of {LIMIT} bytes" in refused.text
    # The portal's own policy (no inline script), not the APIs' bare frame-ancestors one.
    assert "script-src 'self'" in refused.headers["content-security-policy"]
    assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["x-request-id"])

    # No Content-Length (chunked): refused once the received bytes pass the limit.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"a" * (LIMIT // 2)

    chunked = await portal.client.post(
        "/sign-in",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert chunked.status_code == 413
    assert "content-length" not in {k.lower() for k in chunked.request.headers}

    # A roster upload is bounded the same way (before the sign-in check: no page reads it).
    roster = b"email,name,department\n" + b"s@ntut.edu.tw,A,EE\n" * (LIMIT // 10)
    upload = await portal.client.post(
        "/university/roster",
        data={"csrf_token": token},
        files={"roster": ("roster.csv", roster, "text/csv")},
    )
    assert upload.status_code == 413

    # And the portal serves on: a form under the limit is read and answered as usual.
    page = await portal.client.get("/sign-in")
    assert page.status_code == 200
    answered = await portal.client.post(
        "/sign-in", data={"csrf_token": await portal.csrf(), "email": "not an address"}
    )
    assert answered.status_code == 422
    assert (await portal.client.get("/health/ready")).json()["ready"] is True


async def test_metrics_count_pages_by_route_and_sign_in_links(portal: Portal) -> None:
    before = await portal.scrape()
    for _ in range(3):
        assert (await portal.client.get("/sign-in")).status_code == 200
    assert (await portal.client.get("/no-such-page")).status_code == 404
    email = f"ops-{uuid.uuid4().hex[:6]}@ntut.edu.tw"
    token = await portal.csrf()
    assert (
        await portal.client.post("/sign-in", data={"csrf_token": token, "email": email})
    ).status_code == 200
    secret = await eventually(lambda: portal.link_for(email), timeout=20)
    signed_in = await portal.client.post(
        "/sign-in/verify", data={"csrf_token": await portal.csrf(), "token": secret}
    )
    assert signed_in.status_code == 303
    refused = await portal.client.post(
        "/sign-in/verify", data={"csrf_token": await portal.csrf(), "token": secret}
    )
    assert refused.status_code == 400  # a link is used once

    # Gauges are read at scrape time, at most every few seconds, and a request is counted
    # once its answer has gone out: wait for the session and the last request.
    async def scraped_with_session() -> Samples | None:
        samples = await portal.scrape()
        sessions = "kitakyushu_portal_active_sessions"
        last = {"method": "POST", "route": "/sign-in/verify", "status": "400"}
        waited = value(samples, "kitakyushu_http_requests_total", **last) > value(
            before, "kitakyushu_http_requests_total", **last
        )
        return samples if waited and value(samples, sessions) > value(before, sessions) else None

    after = await eventually(scraped_with_session, timeout=20, interval=0.5)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # 3 pages asked for here, and one each for the three forms' tokens.
    requests = "kitakyushu_http_requests_total"
    assert moved(requests, method="GET", route="/sign-in", status="200") == 3 + 3
    assert moved(requests, method="POST", route="/sign-in", status="200") == 1
    assert moved(requests, method="POST", route="/sign-in/verify", status="303") == 1
    assert moved(requests, method="POST", route="/sign-in/verify", status="400") == 1
    assert moved(requests, method="GET", route="<unmatched>", status="404") == 1
    latency = "kitakyushu_http_request_duration_seconds_count"
    assert moved(latency, method="GET", route="/sign-in") == 3 + 3
    links = "kitakyushu_portal_sign_in_links_total"
    assert moved(links, outcome="sent") == 1
    assert moved(links, outcome="used") == 1
    assert moved(links, outcome="refused") == 1
    assert moved(links, outcome="failed") == 0
    assert value(after, "kitakyushu_dependency_up", dependency="mongodb") == 1
    assert value(after, "kitakyushu_service_info", version=VERSION) == 1


async def test_metrics_are_not_served_through_the_ingress(portal: Portal) -> None:
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        forwarded = await portal.client.get("/metrics", headers={header: "203.0.113.7"})
        assert forwarded.status_code == 404, header
        assert "kitakyushu_" not in forwarded.text
    assert (await portal.client.get("/metrics")).status_code == 200


async def test_each_request_has_an_access_line_with_the_request_id_returned(
    portal: Portal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(CorrelationIds())
    given = await portal.client.get("/sign-in", headers={"X-Request-ID": "portal-ops-0001"})
    assert given.status_code == 200
    assert given.headers["x-request-id"] == "portal-ops-0001"
    generated = await portal.client.get("/", headers={"X-Request-ID": "not;an;id" * 20})
    generated_id = generated.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated_id)
    too_large = await portal.client.post(
        "/sign-in", content=b"a" * (LIMIT + 1), headers={"X-Request-ID": "portal-ops-0002"}
    )
    assert too_large.status_code == 413

    # Written once the answer has gone out: wait for the third.
    def access_records() -> list[logging.LogRecord] | None:
        found = [r for r in caplog.records if r.name == "access"]
        return found if len(found) >= 3 else None

    records = await eventually(access_records, timeout=10)
    # As the deployed portal writes them: one JSON object per line (shared/logs.py).
    lines = [json.loads(JsonFormatter().format(r)) for r in records]
    by_id = {line["request_id"]: line for line in lines}
    assert len(by_id) == len(lines) == 3, lines
    first = by_id["portal-ops-0001"]
    assert (first["method"], first["path"], first["route"], first["status"]) == (
        "GET",
        "/sign-in",
        "/sign-in",
        200,
    )
    assert first["logger"] == "access" and first["level"] == "info"
    if tracer_provider() is not None:  # unless OTEL_SDK_DISABLED=true
        assert re.fullmatch(r"[0-9a-f]{32}", first["trace_id"])
        assert by_id[generated_id]["trace_id"] != first["trace_id"]  # a trace per request
    assert isinstance(first["duration_ms"], float)
    second = by_id[generated_id]
    assert (second["path"], second["route"], second["status"]) == ("/", "/", 200)
    refused = by_id["portal-ops-0002"]
    assert (refused["path"], refused["route"], refused["status"]) == (
        "/sign-in",
        "<unmatched>",
        413,
    )
