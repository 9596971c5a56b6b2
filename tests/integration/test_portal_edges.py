"""Issue 18, the portal's edges, against the real portal app (real MongoDB, the real
applications service, the SMTP sink): a control character in any path id is not found, never
a 500 (the routes are read from the app, so a new route is covered); the sign-in pages are
never stored; HSTS over https only; behind a proxy, the client's address and scheme are taken
from X-Forwarded-* only when the proxy is trusted, so per-client sign-in limits count the
visitor, not the proxy. The services' APIs answer such ids with 404 or 422 too."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, routing

from deploy.embedded.processes import free_port
from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.matching.app import MatchingSettings
from services.matching.app import create_app as create_matching
from services.notifications.app import NotificationsSettings
from services.notifications.app import create_app as create_notifications
from services.portal.app import create_app
from services.portal.domain import PortalRole, csrf_token, digest, new_secret
from services.portal.settings import PortalSettings
from services.portal.store import PortalStore
from services.portal.web import SESSION_COOKIE
from shared.auth import Role
from shared.documents import utcnow
from shared.http import _roles
from shared.serve import server_options
from tests.infra import Infra, serving

pytestmark = pytest.mark.integration

# C0 (NUL, line feed), DEL, and C1 (U+0085 NEL, U+009B CSI), as a browser would send them.
BAD_IDS = ("%00", "%0a", "%7f", "%C2%85", "%C2%9B")
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
# Who is signed in for the pages under each prefix (the ids are those the services issue).
PEOPLE = {
    "/coordinator": (PortalRole.COORDINATOR, "city-officer-1"),
    "/company": (PortalRole.COMPANY, "co-0123456789ab"),
    "/student": (PortalRole.STUDENT, "stu-109590001"),
    "/university": (PortalRole.UNIVERSITY, "uni-ntut"),
}


def path_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route of `app` with a path parameter."""
    found = []
    for context in routing.iter_route_contexts(app.routes):
        template = context.path_format
        if template and "{" in template:
            for method in sorted(context.methods or ()):
                if method != "HEAD":
                    found.append((method, template))
    return found


def with_bad_ids(template: str, bad: str) -> list[str]:
    """The path with `bad` in one parameter at a time (plausible values in the others)."""
    names = re.findall(r"\{(\w+)(?::\w+)?\}", template)
    paths = []
    for target in names:
        path = template
        for name in names:
            path = re.sub(r"\{" + name + r"(?::\w+)?\}", bad if name == target else "x-1", path)
        paths.append(path)
    return paths


@dataclass
class Portal:
    client: httpx.AsyncClient
    store: PortalStore
    settings: PortalSettings

    async def sign_in_as(self, role: PortalRole, sub: str) -> str:
        """A session for this person, as the sign-in link makes it; its form token."""
        secret = new_secret()
        await self.store.create_session(
            secret,
            expires_at=utcnow() + timedelta(hours=1),
            role=role.value,
            sub=sub,
            email=f"{sub}@example.test",
            display=sub,
            language="en",
            time_zone="Asia/Tokyo",
            university="National Taipei University of Technology",
        )
        self.client.cookies.set(SESSION_COOKIE, secret)
        return csrf_token(self.settings.require_jwt_secret(), digest(secret))


def portal_settings(infra: Infra, tag: str, **overrides: Any) -> PortalSettings:
    values: dict[str, Any] = {
        "tag": tag,
        "database": f"{tag}_portal",
        "smtp_host": infra.smtp_host,
        "smtp_port": infra.smtp_port,
        **overrides,
    }
    return infra.settings(PortalSettings, **values)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
async def portal(infra: Infra) -> AsyncIterator[Portal]:
    tag = f"edge{uuid.uuid4().hex[:6]}"
    applications = create_applications(
        infra.settings(ApplicationsSettings, tag=tag, database=f"{tag}_applications")
    )
    settings = portal_settings(infra, tag)
    app = create_app(settings)
    async with applications.router.lifespan_context(applications), app.router.lifespan_context(app):
        services = app.state.services
        await services.applications.aclose()
        services.applications = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=applications), base_url="http://applications"
        )
        # A failure is the 500 a browser would see, not an exception in the test.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"Accept-Language": "en"}
        ) as client:
            yield Portal(client, app.state.store, settings)


async def test_a_control_character_in_any_path_id_is_not_found(portal: Portal) -> None:
    app = portal.client._transport.app  # type: ignore[attr-defined]
    routes = path_routes(app)
    # The pages of every role and the language switch, at least.
    assert len(routes) >= 30, routes
    assert {prefix for prefix in PEOPLE if any(p.startswith(prefix) for _, p in routes)} == set(
        PEOPLE
    )
    refused = []
    for method, template in routes:
        prefix = next((p for p in PEOPLE if template.startswith(p + "/")), None)
        # The page's own person is signed in (else the answer would be the sign-in page).
        if prefix is not None:
            role, sub = PEOPLE[prefix]
            token = await portal.sign_in_as(role, sub)
        else:
            portal.client.cookies.clear()
            token = ""
        for bad in BAD_IDS:
            for path in with_bad_ids(template, bad):
                if method == "GET":
                    answer = await portal.client.get(path)
                else:
                    form = {"csrf_token": token, "confirmed": "yes", "back": "/"}
                    answer = await portal.client.request(method, path, data=form)
                if answer.status_code != 404 or "Page not found" not in answer.text:
                    refused.append((method, path, answer.status_code))
    assert not refused


async def test_static_files_with_a_control_character_are_not_found(portal: Portal) -> None:
    for bad in BAD_IDS:
        for base in ("/static/", "/static/charts/"):
            answer = await portal.client.get(base + bad)
            assert answer.status_code == 404, (base, bad)


async def test_the_sign_in_pages_are_never_stored(portal: Portal) -> None:
    portal.client.cookies.clear()
    form = await portal.client.get("/sign-in?next=/student")
    token = CSRF.search(form.text)
    assert token
    email = f"nostore-{uuid.uuid4().hex[:6]}@ntut.edu.tw"
    answers = {
        "GET /sign-in": form,
        "POST /sign-in": await portal.client.post(
            "/sign-in", data={"csrf_token": token.group(1), "email": email}
        ),
        "POST /sign-in, not an address": await portal.client.post(
            "/sign-in", data={"csrf_token": token.group(1), "email": "not an address"}
        ),
        "GET /sign-in/verify": await portal.client.get(f"/sign-in/verify?token={new_secret()}"),
        "POST /sign-in/verify": await portal.client.post(
            "/sign-in/verify", data={"csrf_token": token.group(1), "token": new_secret()}
        ),
        "POST /sign-out": await portal.client.post(
            "/sign-out", data={"csrf_token": token.group(1)}
        ),
    }
    assert answers["POST /sign-in"].status_code == 200
    assert email in answers["POST /sign-in"].text  # the address is on the page
    assert answers["POST /sign-in, not an address"].status_code == 422
    assert answers["POST /sign-in/verify"].status_code == 400
    for name, answer in answers.items():
        assert answer.headers.get("cache-control") == "no-store", name
    # A public page may still be kept.
    assert "cache-control" not in (await portal.client.get("/")).headers


async def test_no_hsts_over_http(portal: Portal) -> None:
    answer = await portal.client.get("/")
    assert answer.status_code == 200
    assert "strict-transport-security" not in answer.headers


@asynccontextmanager
async def served(app: FastAPI, settings: PortalSettings) -> AsyncIterator[str]:
    """The portal on a real uvicorn server of 127.0.0.1, started as `python -m services.portal`
    starts it (shared.serve's options: proxy headers, FORWARDED_ALLOW_IPS)."""
    port = free_port()
    options = server_options(settings) | {"host": "127.0.0.1", "port": port}
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", **options))
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + 60
    while not server.started:
        if task.done():
            task.result()
        assert asyncio.get_running_loop().time() < deadline, "the portal did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
async def applications_url(infra: Infra) -> AsyncIterator[str]:
    tag = f"edgp{uuid.uuid4().hex[:6]}"
    applications = create_applications(
        infra.settings(ApplicationsSettings, tag=tag, database=f"{tag}_applications")
    )
    async with serving(applications) as url:
        yield url


@asynccontextmanager
async def proxied_portal(
    infra: Infra, applications_url: str, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    tag = f"edgp{uuid.uuid4().hex[:6]}"
    settings = portal_settings(
        infra,
        tag,
        applications_url=applications_url,
        sign_in_limit_per_client=2,
        sign_in_limit_per_address=10,
        **overrides,
    )
    async with (
        served(create_app(settings), settings) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


async def sign_in_requests(client: httpx.AsyncClient, forwarded_for: list[str]) -> list[int]:
    """One sign-in request (a new address each) per X-Forwarded-For value: their statuses."""
    page = await client.get("/sign-in")
    found = CSRF.search(page.text)
    assert found, page.text[:300]
    statuses = []
    for client_address in forwarded_for:
        email = f"px-{uuid.uuid4().hex[:8]}@ntut.edu.tw"
        answer = await client.post(
            "/sign-in",
            data={"csrf_token": found.group(1), "email": email},
            headers={"X-Forwarded-For": client_address},
        )
        statuses.append(answer.status_code)
    return statuses


async def test_the_client_behind_a_trusted_proxy_is_the_forwarded_address(
    infra: Infra, applications_url: str
) -> None:
    # The proxy (this test, on 127.0.0.1) is in the trusted range.
    async with proxied_portal(infra, applications_url, forwarded_allow_ips="127.0.0.0/8") as c:
        # Two visitors behind the same proxy: each has their own limit of 2.
        first = await sign_in_requests(c, ["203.0.113.7", "203.0.113.7", "203.0.113.7"])
        assert first == [200, 200, 429]
        second = await sign_in_requests(c, ["198.51.100.9", "198.51.100.9"])
        assert second == [200, 200]
        # https at the proxy: HSTS, and the session cookie is Secure.
        https = await c.get("/", headers={"X-Forwarded-Proto": "https"})
        assert https.headers["strict-transport-security"] == "max-age=31536000"
        plain = await c.get("/", headers={"X-Forwarded-Proto": "http"})
        assert "strict-transport-security" not in plain.headers


async def test_an_untrusted_proxy_cannot_choose_the_client_address_or_scheme(
    infra: Infra, applications_url: str
) -> None:
    # Only 10.0.0.0/8 is trusted: what 127.0.0.1 says it forwards is ignored.
    async with proxied_portal(infra, applications_url, forwarded_allow_ips="10.0.0.0/8") as c:
        # A new X-Forwarded-For per request does not escape the limit of the real client.
        statuses = await sign_in_requests(c, ["203.0.113.1", "203.0.113.2", "203.0.113.3"])
        assert statuses == [200, 200, 429]
        https = await c.get("/", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in https.headers


async def test_hsts_follows_an_https_public_address_and_can_be_turned_off(
    infra: Infra, applications_url: str
) -> None:
    async with proxied_portal(
        infra, applications_url, public_base_url="https://portal.example", hsts_seconds=600
    ) as c:
        answer = await c.get("/sign-in")
        assert answer.headers["strict-transport-security"] == "max-age=600"
        missing = await c.get("/no-such-page")
        assert missing.status_code == 404
        assert missing.headers["strict-transport-security"] == "max-age=600"
    async with proxied_portal(
        infra, applications_url, public_base_url="https://portal.example", hsts_seconds=0
    ) as c:
        answer = await c.get("/sign-in", headers={"X-Forwarded-Proto": "https"})
        assert "strict-transport-security" not in answer.headers


SUBS = {
    "student": "stu-109590001",
    "company": "co-0123456789ab",
    "university": "uni-ntut",
    "coordinator": "city-officer-1",
}


async def test_the_services_answer_a_control_character_in_an_id_with_404_or_422(
    infra: Infra,
) -> None:
    tag = f"edgs{uuid.uuid4().hex[:6]}"
    apps = {
        "applications": create_applications(
            infra.settings(ApplicationsSettings, tag=tag, database=f"{tag}_applications")
        ),
        "matching": create_matching(
            infra.settings(MatchingSettings, tag=tag, database=f"{tag}_matching")
        ),
        "notifications": create_notifications(
            infra.settings(
                NotificationsSettings,
                tag=tag,
                database=f"{tag}_notifications",
                smtp_host=infra.smtp_host,
                smtp_port=infra.smtp_port,
            )
        ),
    }
    wrong = []
    for name, app in apps.items():
        roles = {
            (context.path_format, method): _roles(context.original_route)  # type: ignore[arg-type]
            for context in routing.iter_route_contexts(app.routes)
            if isinstance(context.original_route, routing.APIRoute)
            for method in context.methods or ()
        }
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                base_url="http://test",
            ) as client,
        ):
            for method, template in path_routes(app):
                role = (roles.get((template, method)) or ["coordinator"])[0]
                token = infra.token(Role(role), SUBS[role])
                for bad in BAD_IDS:
                    for path in with_bad_ids(template, bad):
                        answer = await client.request(
                            method, path, headers={"Authorization": f"Bearer {token}"}, json={}
                        )
                        if answer.status_code not in (404, 422):
                            wrong.append((name, method, path, answer.status_code))
    assert not wrong


async def test_a_right_to_left_override_in_a_company_name_never_reaches_a_page(
    portal: Portal,
) -> None:
    """The finding: U+202E in a company name reversed what followed it. The service drops it
    where the name comes in; the pages isolate people's text shown inline (<bdi>)."""
    portal.client.cookies.clear()
    call = await portal.client.get("/call")
    token = CSRF.search(call.text)
    assert token
    suffix = uuid.uuid4().hex[:6]
    answer = await portal.client.post(
        "/call",
        data={
            "csrf_token": token.group(1),
            "name_ja": f"北九州\u202eスチール{suffix}",
            "name_en": f"Kitakyushu \u2066Steel\u2069 {suffix}",
            "sector": "automotive",
            "ward": "Kokura\u202e",
            "address": "1-1 Asano",
            "name": "佐藤\u202b",
            "email": f"sato-{suffix}@example.jp",
            "preferred_language": "ja",
        },
    )
    assert answer.status_code == 200, answer.text[:500]
    assert f"<bdi>北九州スチール{suffix}</bdi>" in answer.text
    await portal.sign_in_as(PortalRole.COORDINATOR, "city-officer-1")
    page = await portal.client.get("/coordinator/companies")
    assert page.status_code == 200
    assert f"北九州スチール{suffix}" in page.text and f"Kitakyushu Steel {suffix}" in page.text
    assert "Kokura, <bdi>1-1 Asano</bdi>" in page.text
    for control in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
        assert control not in page.text and control not in answer.text
