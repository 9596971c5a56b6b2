"""A university office uploads rosters through the portal over real sockets (the portal and the
applications service each on a uvicorn server of 127.0.0.1, real MongoDB, Kafka and the SMTP
sink): files that are not text, or in an encoding we cannot read, are refused with 422 and the
reason (never a 500); Big5, UTF-16 and CR-only files are read with the names intact; the
invitations are mailed in the background at the configured rate, each exactly once, with the
progress on the page; invitations still waiting when a portal stops are sent by the next one,
and two portal processes never mail the same person twice; a relay that is down is tried
again, then the invitation counts as failed."""

from __future__ import annotations

import codecs
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from deploy.embedded.processes import free_port
from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.portal.app import create_app
from services.portal.domain import PortalRole
from services.portal.i18n import translate_in
from services.portal.invitations import InvitationSender
from services.portal.settings import PortalSettings
from services.portal.store import PortalStore
from shared.documents import utcnow
from tests.infra import Infra, eventually, read_mailbox, serving

pytestmark = pytest.mark.integration

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
LINK = re.compile(r"/sign-in/verify\?token=([\w-]+)")
TAIPEI_TECH = "National Taipei University of Technology"
RATE = 20.0  # invitations a second
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"


@dataclass
class Office:
    client: httpx.AsyncClient
    store: PortalStore
    infra: Infra
    settings: PortalSettings

    async def csrf(self, path: str) -> str:
        page = await self.client.get(path)
        found = CSRF.search(page.text)
        assert found, page.text[:500]
        return found.group(1)

    async def upload(self, data: bytes, name: str = "roster.csv") -> httpx.Response:
        token = await self.csrf("/university")
        return await self.client.post(
            "/university/roster",
            data={"csrf_token": token},
            files={"roster": (name, data, "text/csv")},
        )


def mails_to(infra: Infra, addresses: set[str]) -> list[str]:
    assert infra.mailbox is not None
    return [str(m["To"]) for m in read_mailbox(infra.mailbox) if str(m["To"]) in addresses]


async def sign_in(client: httpx.AsyncClient, store: PortalStore, infra: Infra) -> None:
    email = f"office-{uuid.uuid4().hex[:6]}@ntut.edu.tw"
    sub = f"uni-{uuid.uuid4().hex[:6]}"
    await store.add_user(email, PortalRole.UNIVERSITY, sub, university=TAIPEI_TECH)
    page = await client.get("/sign-in")
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    assert (await client.post("/sign-in", data={"csrf_token": token, "email": email})).is_success

    def link() -> str | None:
        assert infra.mailbox is not None
        for message in reversed(read_mailbox(infra.mailbox)):
            found = LINK.search(message.get_content()) if str(message["To"]) == email else None
            if found:
                return found.group(1)
        return None

    secret = await eventually(link, timeout=20)
    page = await client.get(f"/sign-in/verify?token={secret}")
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    verified = await client.post("/sign-in/verify", data={"csrf_token": token, "token": secret})
    assert verified.status_code == 303 and verified.headers["location"] == "/university"


@pytest.fixture(scope="module")
async def office(infra: Infra) -> AsyncIterator[Office]:
    if infra.mailbox is None:
        pytest.skip("needs the embedded SMTP sink to read the mails")
    tag = f"rost{uuid.uuid4().hex[:6]}"
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
            roster_invitations_per_second=RATE,
        )
        app = create_app(settings)
        async with (
            serving(app) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            await sign_in(client, app.state.store, infra)
            yield Office(client, app.state.store, infra, settings)


def roster(people: list[tuple[str, str, str]]) -> str:
    return "email,name,department\n" + "".join(f"{e},{n},{d}\n" for e, n, d in people)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (PNG, "this file is not a text CSV"),
        (b"a@ntut.edu.tw,A,EE\r\x00\x01\x02\xff\xd8\xff\xe0", "this file is not a text CSV"),
        ("a@ntut.edu.tw,Jos\xe9,EE\r\n".encode("latin-1"), "cannot read the file's encoding"),
    ],
    ids=["png", "binary-with-cr", "latin1"],
)
async def test_a_file_that_is_not_a_readable_csv_is_refused_with_the_reason(
    office: Office, data: bytes, reason: str
) -> None:
    before = await office.store.users.count_documents({"role": "student"})
    refused = await office.upload(data)
    assert refused.status_code == 422
    assert "The file was not used:" in refused.text
    assert reason in refused.text.replace("&#39;", "'")
    assert await office.store.users.count_documents({"role": "student"}) == before


async def test_an_unterminated_quote_is_a_line_with_a_reason(office: Office) -> None:
    tag = uuid.uuid4().hex[:6]
    data = f'email,name,department\nq-{tag}@ntut.edu.tw,"Lin,EE\n'.encode() + b"x" * 140_000
    refused = await office.upload(data)
    assert refused.status_code == 422
    assert "Line 2" in refused.text
    assert translate_in("en", "not readable as CSV from here on") in refused.text


@pytest.mark.parametrize(
    ("codec", "end"),
    [("cp950", "\r"), ("cp950", "\r\n"), ("utf-16", "\r\n"), ("utf-8-sig", "\r")],
    ids=["big5-cr", "big5-crlf", "utf16-crlf", "utf8bom-cr"],
)
async def test_big5_and_utf16_rosters_store_the_names_intact(
    office: Office, codec: str, end: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    people = [
        (f"lin-{tag}@ntut.edu.tw", "林怡君", "資訊工程系"),
        (f"chen-{tag}@ntut.edu.tw", "陳冠廷", "機械工程系"),
    ]
    answer = await office.upload(roster(people).replace("\n", end).encode(codec))
    assert answer.status_code == 303, answer.text[-2000:]
    for email, name, department in people:
        stored = await office.store.find_user(email)
        assert stored is not None
        assert (stored["name"], stored["department"]) == (name, department)
        assert stored["university"] == TAIPEI_TECH
    page = await office.client.get(f"/university?q={tag}")
    assert "林怡君" in page.text and "陳冠廷" in page.text
    # Both are mailed, once each.
    addresses = {p[0] for p in people}
    await eventually(lambda: len(mails_to(office.infra, addresses)) == 2, timeout=20)


async def test_a_roster_is_mailed_in_the_background_at_the_set_rate_each_once(
    office: Office,
) -> None:
    tag = uuid.uuid4().hex[:6]
    people = [(f"r{n:02d}-{tag}@ntut.edu.tw", f"學生{n}", "電機工程系") for n in range(30)]
    addresses = {p[0] for p in people}
    data = codecs.BOM_UTF16_LE + roster(people).replace("\n", "\r\n").encode("utf-16-le")

    answer = await office.upload(data)
    assert answer.status_code == 303
    # Answered once the rows are stored, long before 30 mails at 20 a second have gone.
    assert len(mails_to(office.infra, addresses)) < 30
    stored = await office.store.users.count_documents({"_id": {"$in": list(addresses)}})
    assert stored == 30
    page = await office.client.get("/university")
    assert "30 students were invited." in page.text
    assert "of 30 invitations sent" in page.text  # the progress, without JavaScript

    await eventually(lambda: len(mails_to(office.infra, addresses)) >= 30, timeout=30)
    mailed = mails_to(office.infra, addresses)
    assert sorted(mailed) == sorted(addresses)  # every one, exactly once
    # Recorded once the relay has taken the mail: a moment after the sink has it.
    sent = {"_id": {"$in": list(addresses)}, "invitation_state": "sent"}
    await eventually(lambda: _count_is(office.store, sent, 30), timeout=10)
    users = await office.store.users.find({"_id": {"$in": list(addresses)}}).to_list()
    assert all(u["invitation_sent_at"] >= u["invitation_claimed_at"] for u in users)
    claimed = sorted(u["invitation_claimed_at"] for u in users)
    # Each send is claimed at least 1/RATE after the one before: 30 span 29 intervals.
    assert (claimed[-1] - claimed[0]).total_seconds() >= 29 / RATE * 0.95
    page = await office.client.get("/university")
    assert "30 of 30 invitations sent, 0 waiting, 0 failed." in page.text

    # The same roster again: every row is named as invited already, and nobody is mailed.
    again = await office.upload(data)
    assert again.status_code == 200
    assert again.text.count("already invited from a roster") == 30
    assert "0 students were invited." in again.text
    await office.client.get("/university")  # time for a wrong second mail to show
    assert len(mails_to(office.infra, addresses)) == 30


async def _count_is(store: PortalStore, query: dict[str, Any], expected: int) -> bool:
    return await store.users.count_documents(query) == expected


def waiting(email: str, **extra: Any) -> dict[str, Any]:
    now = utcnow()
    return {
        "_id": email,
        "role": "student",
        "sub": f"stu-{uuid.uuid4().hex[:8]}",
        "created_at": now,
        "name": "王小明",
        "department": "EE",
        "university": TAIPEI_TECH,
        "invited_at": now,
        "invitation_batch": "roster-before-restart",
        "invitation_state": "waiting",
        "invitation_retry_at": now,
        **extra,
    }


async def test_waiting_invitations_are_sent_after_a_restart_once_by_two_portals(
    office: Office,
) -> None:
    # What a portal left when it stopped: 20 invitations waiting and one claimed long ago
    # (stopped mid-send: it may have gone out, so it is not sent again but counted failed).
    tag = uuid.uuid4().hex[:6]
    settings = office.settings.model_copy(update={"database": f"restart{tag}_portal"})
    addresses = {f"w{n:02d}-{tag}@ntut.edu.tw" for n in range(20)}
    abandoned = f"abandoned-{tag}@ntut.edu.tw"
    first, second = create_app(settings), create_app(settings)
    store: PortalStore = first.state.store
    await store.add_users([waiting(e) for e in sorted(addresses)])
    claimed = utcnow() - timedelta(minutes=11)
    await store.add_users(
        [waiting(abandoned, invitation_state="sending", invitation_claimed_at=claimed)]
    )

    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        await eventually(lambda: len(mails_to(office.infra, addresses)) >= 20, timeout=30)
        failed = await eventually(
            lambda: store.users.find_one({"_id": abandoned, "invitation_state": "failed"}),
            timeout=10,
        )
        # Recorded once the relay has taken the mail: a moment after the sink has it.
        sent = {"_id": {"$in": list(addresses)}, "invitation_state": "sent"}
        await eventually(lambda: _count_is(store, sent, 20), timeout=10)
    assert sorted(mails_to(office.infra, addresses)) == sorted(addresses)  # none twice
    assert mails_to(office.infra, {abandoned}) == []
    assert failed["invitation_error"] == "interrupted"


async def test_a_relay_that_is_down_is_tried_again_then_the_invitation_counts_failed(
    office: Office,
) -> None:
    # Nothing listens on the port: each send fails as a relay that is down would.
    tag = uuid.uuid4().hex[:6]
    settings = office.settings.model_copy(
        update={"database": f"down{tag}_portal", "smtp_port": free_port()}
    )
    app = create_app(settings)  # its lifespan is not started: this test drives the sender
    store: PortalStore = app.state.store
    sender: InvitationSender = app.state.invitations
    email = f"down-{tag}@ntut.edu.tw"
    await store.add_users([waiting(email)])
    later = utcnow()
    for attempt in (1, 2, 3):
        later += timedelta(minutes=attempt + 1)  # past the retry time the failure set
        claimed = await store.claim_invitation(later)
        assert claimed is not None and claimed["_id"] == email
        assert await store.claim_invitation(later) is None  # claimed: nobody else gets it
        await sender.send(claimed)
        user = await store.find_user(email)
        assert user is not None and user["invitation_attempts"] == attempt
        assert user["invitation_error"].startswith("SMTP")
        if attempt < 3:
            assert user["invitation_state"] == "waiting"
            assert user["invitation_retry_at"] > user["invitation_failed_at"]
    assert user["invitation_state"] == "failed"
    assert await store.claim_invitation(later + timedelta(days=1)) is None
    assert mails_to(office.infra, {email}) == []
    await store.db.client.close()


async def test_a_row_with_staff_or_a_company_contacts_address_is_skipped_with_the_reason(
    office: Office,
) -> None:
    """One address, one person: an office cannot turn a company's contact (or staff) into a
    student, which would send their next sign-in to a student's pages (issue 18, row 3)."""
    contact = f"hr-{uuid.uuid4().hex[:6]}@company.example"
    staff = f"officer-{uuid.uuid4().hex[:6]}@city.example"
    student = f"s-{uuid.uuid4().hex[:6]}@ntut.edu.tw"
    await office.store.add_user(staff, PortalRole.COORDINATOR, f"coord-{uuid.uuid4().hex[:6]}")
    async with httpx.AsyncClient(base_url=office.settings.applications_url) as api:
        registered = await api.post(
            "/companies",
            json={
                "name_ja": "響灘テスト株式会社",
                "name_en": "Hibikinada Test",
                "sector": "semiconductor",
                "ward": "Wakamatsu-ku",
                "address": "1-1 Hibikino",
                "contact": {"name": "山田 花子", "email": contact, "preferred_language": "ja"},
            },
        )
        assert registered.status_code == 201, registered.text
    page = await office.upload(
        roster(
            [
                (contact.upper(), "Company Contact", "EE"),
                (staff, "Officer", "EE"),
                (student, "林怡君", "電機工程系"),
            ]
        ).encode()
    )
    assert page.status_code == 200, page.text[:500]
    assert page.text.count("belongs to someone else on the platform") == 2
    assert await office.store.find_user(contact) is None
    assert (await office.store.find_user(staff))["role"] == "coordinator"  # type: ignore[index]
    assert (await office.store.find_user(student))["role"] == "student"  # type: ignore[index]
