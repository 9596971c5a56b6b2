"""Sign-in and sessions of the portal against real MongoDB and the SMTP sink: one-time links
stored hashed, single use, expiring; the same answer for unknown addresses; rate limits; CSRF;
cookie flags; idle expiry; sign-out; roles kept apart."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from deploy.embedded.processes import free_port
from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.portal.app import create_app
from services.portal.domain import PortalRole, digest
from services.portal.settings import PortalSettings
from services.portal.store import PortalStore
from shared.auth import Role
from tests.infra import Infra, eventually, read_mailbox

pytestmark = pytest.mark.integration
LINK = re.compile(r"/sign-in/verify\?token=([\w-]+)")
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


class Portal:
    def __init__(self, client: httpx.AsyncClient, store: PortalStore, infra: Infra) -> None:
        self.client = client
        self.store = store
        self.infra = infra

    async def csrf(self, path: str = "/sign-in") -> str:
        page = await self.client.get(path)
        found = CSRF.search(page.text)
        assert found, page.text[:500]
        return found.group(1)

    async def services_get(self, path: str, headers: dict[str, str]) -> Any:
        app = self.client._transport.app  # type: ignore[attr-defined]
        response = await app.state.services.applications.get(path, headers=headers)
        return response.json()

    async def services_post(self, path: str, headers: dict[str, str]) -> Any:
        app = self.client._transport.app  # type: ignore[attr-defined]
        response = await app.state.services.applications.post(path, headers=headers)
        return response.json()

    async def request_link(self, email: str) -> httpx.Response:
        token = await self.csrf()
        return await self.client.post("/sign-in", data={"csrf_token": token, "email": email})

    async def link_for(self, email: str) -> str:
        assert self.infra.mailbox is not None

        def find() -> str | None:
            for message in reversed(read_mailbox(self.infra.mailbox)):  # type: ignore[arg-type]
                if str(message["To"]) == email:
                    found = LINK.search(message.get_content())
                    if found:
                        return found.group(1)
            return None

        return str(await eventually(find, timeout=20))

    async def verify(self, secret: str) -> httpx.Response:
        await self.client.get(f"/sign-in/verify?token={secret}")  # a page, not spending it
        token = await self.csrf("/sign-in")
        return await self.client.post(
            "/sign-in/verify", data={"csrf_token": token, "token": secret}
        )


@pytest.fixture
async def portal(infra: Infra) -> AsyncIterator[Portal]:
    tag = uuid.uuid4().hex[:8]
    settings = infra.settings(
        PortalSettings,
        tag=tag,
        database=f"portal_{tag}",
        smtp_host=infra.smtp_host,
        smtp_port=infra.smtp_port,
        public_base_url="https://portal.example",
        sign_in_limit_per_address=3,
        sign_in_limit_per_client=6,
    )
    applications = create_applications(
        infra.settings(ApplicationsSettings, tag=tag, database=f"applications_{tag}")
    )
    app = create_app(settings)
    async with applications.router.lifespan_context(applications), app.router.lifespan_context(app):
        # The portal calls the real applications service (in-process).
        services = app.state.services
        await services.applications.aclose()
        services.applications = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=applications), base_url="http://applications"
        )
        # https: the cookies are Secure (PUBLIC_BASE_URL is https), so the client must be too.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
            yield Portal(client, app.state.store, infra)


async def test_a_student_signs_in_once_with_a_link_that_is_stored_hashed(portal: Portal) -> None:
    email = f"s-{uuid.uuid4().hex[:6]}@ntut.edu.tw"
    answer = await portal.request_link(email)
    assert answer.status_code == 200
    secret = await portal.link_for(email)
    stored = await portal.store.links.find_one({"email": email})
    assert stored is not None
    assert stored["_id"] == digest(secret) and secret not in str(stored)
    assert stored["expires_at"] - stored["created_at"] == timedelta(minutes=15)

    signed_in = await portal.verify(secret)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/student"
    cookie = next(c for c in signed_in.headers.get_list("set-cookie") if "portal_session=" in c)
    for flag in ("HttpOnly", "SameSite=lax", "Secure"):
        assert flag.lower() in cookie.lower(), cookie
    # Signed in: the profile page is served, not a redirect to the sign-in.
    page = await portal.client.get("/student/profile")
    assert page.status_code == 200 and 'name="consent_to_data_use"' in page.text

    # The link is spent: a second use (e.g. a forwarded mail) gets nothing.
    portal.client.cookies.clear()
    again = await portal.verify(secret)
    assert again.status_code == 400
    assert "portal_session=" not in " ".join(again.headers.get_list("set-cookie"))


async def test_unknown_addresses_get_the_same_answer_and_no_mail(portal: Portal) -> None:
    known = f"k-{uuid.uuid4().hex[:6]}@ntut.edu.tw"
    unknown = f"u-{uuid.uuid4().hex[:6]}@gmail.example"
    a = await portal.request_link(known)
    b = await portal.request_link(unknown)
    assert a.status_code == b.status_code == 200
    assert a.text.replace(known, "X") == b.text.replace(unknown, "X")
    await portal.link_for(known)
    assert portal.infra.mailbox is not None
    assert not [m for m in read_mailbox(portal.infra.mailbox) if str(m["To"]) == unknown]
    assert await portal.store.links.count_documents({"email": unknown}) == 0


async def test_an_expired_link_does_not_sign_in(portal: Portal) -> None:
    email = f"e-{uuid.uuid4().hex[:6]}@ntut.edu.tw"
    await portal.request_link(email)
    secret = await portal.link_for(email)
    await portal.store.links.update_one(
        {"_id": digest(secret)}, {"$set": {"expires_at": time_ago(1)}}
    )
    assert (await portal.verify(secret)).status_code == 400


async def test_requests_per_client_are_limited_whatever_the_address(portal: Portal) -> None:
    emails = [f"c{n}-{uuid.uuid4().hex[:6]}@ntut.edu.tw" for n in range(7)]
    codes = [(await portal.request_link(email)).status_code for email in emails]
    assert codes == [200] * 6 + [429]


async def test_requests_per_address_are_limited(portal: Portal) -> None:
    email = f"r-{uuid.uuid4().hex[:6]}@ntut.edu.tw"
    codes = [(await portal.request_link(email)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


async def test_forms_need_their_csrf_token(portal: Portal) -> None:
    await portal.csrf()  # a browser session exists
    forged = await portal.client.post("/sign-in", data={"email": "x@ntut.edu.tw"})
    assert forged.status_code == 403
    wrong = await portal.client.post("/sign-in", data={"email": "x@ntut.edu.tw", "csrf_token": "0"})
    assert wrong.status_code == 403


async def test_sessions_expire_when_idle_and_end_at_sign_out(portal: Portal) -> None:
    email = f"c-{uuid.uuid4().hex[:6]}@city.example"
    await portal.store.add_user(email, PortalRole.COORDINATOR, f"coord-{uuid.uuid4().hex[:6]}")
    await portal.request_link(email)
    await portal.verify(await portal.link_for(email))
    # A coordinator is not a student: another role's page is "not found".
    assert (await portal.client.get("/student")).status_code == 404
    session = await portal.store.sessions.find_one({"email": email})
    assert session is not None
    await portal.store.sessions.update_one(
        {"_id": session["_id"]}, {"$set": {"last_seen": time_ago(61 * 60)}}
    )
    expired = await portal.client.get("/coordinator/companies")
    assert expired.status_code == 303
    assert expired.headers["location"] == "/sign-in?next=%2Fcoordinator%2Fcompanies"
    assert await portal.store.sessions.count_documents({"_id": session["_id"]}) == 0

    await portal.request_link(email)
    await portal.verify(await portal.link_for(email))
    token = await portal.csrf("/sign-in")
    out = await portal.client.post("/sign-out", data={"csrf_token": token})
    assert out.status_code == 200
    assert await portal.store.sessions.count_documents({"email": email}) == 0
    assert (await portal.client.get("/coordinator")).status_code == 303


def time_ago(seconds: float):  # type: ignore[no-untyped-def]
    from shared.documents import utcnow

    return utcnow() - timedelta(seconds=seconds)


async def test_an_approved_company_contact_signs_in_and_a_pending_one_does_not(
    portal: Portal,
) -> None:
    """Also after a suspension: the mail that says so links to the company's pages."""
    coordinator = {"Authorization": f"Bearer {portal.infra.token(Role.COORDINATOR, 'c')}"}
    emails = [f"hr-{uuid.uuid4().hex[:6]}@example.jp" for _ in range(2)]
    ids = []
    for email in emails:
        company = await portal.client.post(
            "/call",
            data={
                "csrf_token": await portal.csrf("/call"),
                "name_ja": "響灘テスト株式会社",
                "name_en": "Hibikinada Test",
                "sector": "automotive",
                "ward": "Wakamatsu-ku",
                "address": "1-1 Hibikino",
                "name": "山田",
                "email": email,
                "preferred_language": "ja",
            },
        )
        assert company.status_code == 200, company.text[:300]
        stored = await portal.services_get("/companies", coordinator)
        ids.append(next(c["id"] for c in stored if c["contact"]["email"] == email))
    approved = await portal.services_post(f"/companies/{ids[0]}/approve", coordinator)
    assert approved["status"] == "approved"

    await portal.request_link(emails[0])
    first = await portal.link_for(emails[0])
    signed_in = await portal.verify(first)
    assert signed_in.headers["location"] == "/company"
    overview = await portal.client.get("/company/profile")  # needs only applications
    assert overview.status_code == 200 and "響灘テスト株式会社" in overview.text
    assert 'lang="ja"' in overview.text  # the contact's language

    await portal.request_link(emails[1])  # pending: no link
    assert await portal.store.links.count_documents({"email": emails[1]}) == 0

    await portal.services_post(f"/companies/{ids[0]}/suspend", coordinator)
    await portal.client.post(
        "/sign-out", data={"csrf_token": await portal.csrf("/company/profile")}
    )
    await portal.request_link(emails[0])

    async def new_link() -> str | None:
        link = await portal.link_for(emails[0])
        return link if link != first else None

    signed_in = await portal.verify(await eventually(new_link, timeout=20))
    assert signed_in.headers["location"] == "/company"
    profile = await portal.client.get("/company/profile")
    assert profile.status_code == 200 and "停止中" in profile.text  # suspended, in Japanese


async def test_without_the_applications_service_no_link_is_pretended(portal: Portal) -> None:
    services = portal.client._transport.app.state.services  # type: ignore[attr-defined]
    services.applications = httpx.AsyncClient(base_url=f"http://127.0.0.1:{free_port()}")
    unknown = await portal.request_link(f"who-{uuid.uuid4().hex[:6]}@example.jp")
    assert unknown.status_code == 503
    # Students need no look-up: their link still goes out.
    student = f"st-{uuid.uuid4().hex[:6]}@ntut.edu.tw"
    assert (await portal.request_link(student)).status_code == 200
    await portal.link_for(student)
