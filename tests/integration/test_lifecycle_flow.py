"""Issue 7 end to end, across the three real services on the real Kafka, MongoDB and SMTP
sink: each numbered case of the issue now ends correctly, and every new message is sent
once, in zh-TW, ja and en (every party exists once per language)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.matching.app import MatchingSettings
from services.matching.app import create_app as create_matching
from services.notifications.app import NotificationsSettings
from services.notifications.app import create_app as create_notifications
from services.notifications.wording import format_deadline
from shared.auth import Role
from shared.events.vocabulary import Language
from tests.driver import ApplicationsDriver, day
from tests.infra import Infra, TopicReader, eventually, read_mailbox, running

pytestmark = pytest.mark.integration

TAG = "lifecycle"
LANGUAGES = ("zh-TW", "ja", "en")
PORTAL = "https://kki.example.jp"
CONTACT = "internships@city.example"


class Service:
    """A service run in-process that a test can stop and start again (a restart)."""

    def __init__(self, factory: Callable[[], FastAPI]) -> None:
        self.factory = factory
        self.app: FastAPI | None = None
        self.client: httpx.AsyncClient | None = None
        self._cm: AbstractAsyncContextManager[httpx.AsyncClient] | None = None

    async def start(self) -> None:
        self.app = self.factory()
        self._cm = running(self.app)
        self.client = await self._cm.__aenter__()

    async def stop(self) -> None:
        assert self._cm is not None
        await self._cm.__aexit__(None, None, None)


@dataclass
class Platform:
    apps: ApplicationsDriver
    matching: httpx.AsyncClient
    notifications: Service
    settings: NotificationsSettings
    matching_settings: MatchingSettings
    mongo: AsyncMongoClient[dict[str, Any]]
    infra: Infra
    addresses: set[str] = field(default_factory=set)

    @property
    def mdb(self) -> Any:
        return self.mongo[self.matching_settings.database]

    @property
    def ndb(self) -> Any:
        return self.mongo[self.settings.database]

    # parties -----------------------------------------------------------------------------

    async def company(self, language: str) -> str:
        company = await self.apps.company(language=language)
        info = await self.apps.call("GET", f"/companies/{company}", self.apps.coordinator)
        self.addresses.add(info["contact"]["email"])
        return company

    async def student(self, language: str, **overrides: Any) -> str:
        student = await self.apps.student(language=language, **overrides)
        self.addresses.add(f"{student}@example.tw")
        return student

    async def company_address(self, company: str) -> str:
        info = await self.apps.call("GET", f"/companies/{company}", self.apps.coordinator)
        return str(info["contact"]["email"])

    # matching ----------------------------------------------------------------------------

    async def call(
        self, method: str, url: str, role: Role, sub: str, body: Any = None, expect: int = 200
    ) -> Any:
        r = await self.matching.request(method, url, headers=self.apps.auth(role, sub), json=body)
        assert r.status_code == expect, (method, url, r.status_code, r.text)
        return r.json()

    async def synced(self, cohort: str, applications: int, positions: int) -> None:
        async def caught_up() -> bool:
            apps = await self.mdb["applications"].count_documents(
                {"cohort_id": cohort, "ranked_position_ids": {"$exists": True}}
            )
            pos = await self.mdb["positions"].count_documents(
                {"cohort_id": cohort, "capacity": {"$exists": True}}
            )
            return apps >= applications and pos >= positions

        await eventually(caught_up, timeout=30)

    async def matching_knows(self, cohort: str, state: str, since: datetime | None = None) -> None:
        """Wait until matching's copy of the cohort is in `state`, by a transition made at or
        after `since` (an older transition to the same state must not count: a later one may
        still be on its way)."""

        async def known() -> bool:
            doc = await self.mdb["cohorts"].find_one({"_id": cohort})
            if doc is None or doc["state"] != state:
                return False
            return since is None or doc["changed_at"] >= since

        await eventually(known, timeout=30)

    async def close(self, cohort: str) -> None:
        since = datetime.now(UTC)
        await self.apps.close(cohort)
        await self.matching_knows(cohort, "closed", since)

    async def run_round(self, cohort: str, expect: int = 201, **extra: Any) -> Any:
        body = {"cohort_id": cohort, "seed": 11, **extra}
        return await self.call("POST", "/rounds", Role.COORDINATOR, "c", body, expect=expect)

    async def proposals(self, cohort: str) -> dict[str, dict[str, Any]]:
        """The latest proposal of each student in the cohort."""
        docs = await self.call("GET", f"/proposals?cohort_id={cohort}", Role.COORDINATOR, "c")
        return {d["student_id"]: d for d in docs}

    async def proposal_status(self, proposal_id: str, status: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            doc = await self.call("GET", f"/proposals/{proposal_id}", Role.COORDINATOR, "c")
            return doc if doc["status"] == status else None

        return await eventually(reached, timeout=30)  # type: ignore[no-any-return]

    async def answer(
        self, proposal_id: str, role: Role, sub: str, accept: bool = True, expect: int = 200
    ) -> Any:
        verb = "accept" if accept else "decline"
        return await self.call("POST", f"/proposals/{proposal_id}/{verb}", role, sub, expect=expect)

    # applications ------------------------------------------------------------------------

    async def application(self, student: str, cohort: str) -> dict[str, Any]:
        (doc,) = await self.apps.call(
            "GET", f"/applications?cohort_id={cohort}", self.apps.auth(Role.STUDENT, student)
        )
        return doc  # type: ignore[no-any-return]

    async def application_state(self, student: str, cohort: str, state: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            doc = await self.application(student, cohort)
            return doc if doc["state"] == state else None

        return await eventually(reached, timeout=30)  # type: ignore[no-any-return]

    async def cohort_state(self, cohort: str, state: str) -> None:
        async def reached() -> bool:
            doc = await self.apps.call("GET", f"/cohorts/{cohort}", self.apps.coordinator)
            return doc["state"] == state

        await eventually(reached, timeout=30)

    # messages ----------------------------------------------------------------------------

    async def settled(self) -> bool:
        busy = await self.ndb["messages"].count_documents(
            {
                "$or": [
                    {"status": "sending"},
                    {"status": "pending", "next_attempt_at": {"$lte": datetime.now(UTC)}},
                ]
            }
        )
        return busy == 0

    def all_mail(self) -> list[EmailMessage]:
        assert self.infra.mailbox is not None
        return read_mailbox(self.infra.mailbox)

    def mail(self, address: str, template: str | None = None) -> list[EmailMessage]:
        return [
            m
            for m in self.all_mail()
            if address in str(m["To"]) and template in (None, str(m["X-Template"]))
        ]

    def assert_sent_once_in_language(self, address: str, language: str) -> Counter[str]:
        """Every mail to this address: in its reader's language, each (event, template) once,
        with a link to the portal and the contact address. Returns the templates sent."""
        mails = self.mail(address)
        keys = Counter((str(m["X-Event-Id"]), str(m["X-Template"])) for m in mails)
        assert all(n == 1 for n in keys.values()), (address, keys)
        for m in mails:
            assert str(m["Content-Language"]) == language, (address, m["X-Template"])
            body = m.get_content()
            assert PORTAL in body and CONTACT in body, (address, m["X-Template"])
        return Counter(str(m["X-Template"]) for m in mails)


@pytest.fixture(scope="module")
async def platform(infra: Infra) -> AsyncIterator[Platform]:
    if infra.mailbox is None:
        pytest.skip("needs the embedded SMTP sink to read what was sent")
    settings = infra.settings(
        NotificationsSettings,
        tag=TAG,
        database="lc_notifications",
        smtp_host=infra.smtp_host,
        smtp_port=infra.smtp_port,
        delivery_retry_base_seconds=0.2,
        delivery_max_attempts=10,
        delivery_poll_seconds=0.2,
        coordinator_email=f"coordinator-{TAG}@city.example",
        contact_email=CONTACT,
        public_base_url=PORTAL,
    )
    matching_settings = infra.settings(
        MatchingSettings, tag=TAG, database="lc_matching", expiry_sweep_seconds=0.3
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    notifications = Service(lambda: create_notifications(settings))
    await notifications.start()
    try:
        async with (
            running(
                create_applications(
                    infra.settings(ApplicationsSettings, tag=TAG, database="lc_applications")
                )
            ) as apps,
            running(create_matching(matching_settings)) as matching,
        ):
            yield Platform(
                ApplicationsDriver(apps, infra),
                matching,
                notifications,
                settings,
                matching_settings,
                mongo,
                infra,
            )
    finally:
        await notifications.stop()
        await mongo.close()


def address(student: str) -> str:
    return f"{student}@example.tw"


def detail(response: Any) -> dict[str, Any]:
    return response["detail"][0]  # type: ignore[no-any-return]


async def test_rejection_suspension_withdrawal_and_erasure_cancel_pending_proposals(
    platform: Platform,
) -> None:
    """Cases 1, 2 and 3: a rejected (or suspended) company, a withdrawn application and an
    erased student each cancel the pending proposal; nobody can accept it; no placement."""
    d = platform.apps
    cohort = await d.cohort()
    world: dict[str, dict[str, Any]] = {}
    for lang in LANGUAGES:
        w: dict[str, Any] = {
            "rejected": await platform.company(lang),
            "suspended": await platform.company(lang),
            "keeps": await platform.company(lang),
        }
        w["positions"] = {
            "rejected": await d.position(w["rejected"], cohort),
            "suspended": await d.position(w["suspended"], cohort),
            "withdrawn": await d.position(w["keeps"], cohort),
            "erased": await d.position(w["keeps"], cohort),
        }
        w["students"] = {}
        w["applications"] = {}
        for case, position in w["positions"].items():
            student = await platform.student(lang)
            w["students"][case] = student
            w["applications"][case] = (await d.apply(student, cohort, [position]))["id"]
        world[lang] = w
    await platform.synced(cohort, applications=12, positions=12)
    await platform.close(cohort)
    first = await platform.run_round(cohort)
    assert first["statistics"]["proposed"] == 12
    proposals = await platform.proposals(cohort)

    for w in world.values():
        s = w["students"]
        rejected = await d.call("POST", f"/companies/{w['rejected']}/reject", d.coordinator)
        assert rejected["status"] == "rejected"
        assert rejected["closed_position_ids"] == [w["positions"]["rejected"]]
        await d.call("POST", f"/companies/{w['suspended']}/suspend", d.coordinator)
        withdrawn = await d.call(
            "DELETE",
            f"/applications/{w['applications']['withdrawn']}",
            d.auth(Role.STUDENT, s["withdrawn"]),
        )
        assert withdrawn["state"] == "withdrawn" and withdrawn["allowed_actions"] == []
        await d.call("DELETE", f"/students/{s['erased']}", d.auth(Role.STUDENT, s["erased"]))

    reasons = {
        "rejected": "company_rejected",
        "suspended": "company_suspended",
        "withdrawn": "application_withdrawn",
        "erased": "student_erased",
    }
    for lang, w in world.items():
        for case, student in w["students"].items():
            proposal = await platform.proposal_status(proposals[student]["id"], "cancelled")
            assert proposal["cancel_reason"] == reasons[case], (lang, case)
            # Neither side can accept what is cancelled: 409 with the state and what is left.
            pid = proposal["id"]
            company = proposal["company_id"]
            refused = await platform.answer(pid, Role.STUDENT, student, expect=409)
            assert detail(refused)["current_state"] == "cancelled"
            assert detail(refused)["allowed"] == []
            await platform.answer(pid, Role.COMPANY, company, expect=409)
        # The rejected company can no longer publish.
        r = await d.client.post(
            "/positions",
            headers=d.auth(Role.COMPANY, w["rejected"]),
            json={
                "cohort_id": cohort,
                "title": "t",
                "track": "joint_research",
                "capacity": 1,
                "paid": True,
                "start_date": day("07-01"),
                "end_date": day("08-31"),
                "location": "Tobata",
            },
        )
        assert r.status_code == 409
    placements = await platform.call(
        "GET", f"/placements?cohort_id={cohort}", Role.COORDINATOR, "c"
    )
    assert placements == []

    # The applications service tells each student where they stand.
    for w in world.values():
        s = w["students"]
        cancelled = await platform.application_state(s["rejected"], cohort, "cancelled")
        assert cancelled["proposal"]["reason"] == "company_rejected"
        assert "withdraw" in cancelled["allowed_actions"]
        await platform.application_state(s["withdrawn"], cohort, "withdrawn")
        r = await d.client.get(f"/students/{s['erased']}", headers=d.coordinator)
        assert r.status_code == 404

    # The next round proposes nothing on ground that is gone.
    second = await platform.run_round(cohort)
    assert second["pairs"] == []
    exclusions = await platform.call(
        "GET", f"/rounds/{second['id']}/exclusions", Role.COORDINATOR, "c"
    )
    excluded = {(e["student_id"], e["reason"]) for e in exclusions}
    for w in world.values():
        assert (w["students"]["rejected"], "position_unavailable") in excluded
        await platform.application_state(w["students"]["rejected"], cohort, "not_matched")

    # Who was told what, once each, in their language.
    await eventually(platform.settled, timeout=60)
    for lang, w in world.items():
        s = w["students"]
        await eventually(lambda a=address(s["rejected"]): platform.mail(a, "not_matched.student"))
        assert platform.assert_sent_once_in_language(address(s["rejected"]), lang) == Counter(
            {
                "application_submitted.student": 1,
                "match_proposed.student": 1,
                "match_cancelled.student": 1,
                "not_matched.student": 1,
            }
        )
        sent = platform.assert_sent_once_in_language(address(s["withdrawn"]), lang)
        assert sent["application_withdrawn.student"] == 1
        assert sent["match_cancelled.student"] == 1
        assert not platform.mail(address(s["erased"]), "match_cancelled.student")
        rejected_sent = platform.assert_sent_once_in_language(
            await platform.company_address(w["rejected"]), lang
        )
        assert rejected_sent == Counter(
            {
                "company_pending.company": 1,  # the registration, confirmed
                "company_approved.company": 1,
                "match_proposed.company": 1,
                "company_rejected.company": 1,
                "match_cancelled.company": 1,
            }
        )
        suspended_sent = platform.assert_sent_once_in_language(
            await platform.company_address(w["suspended"]), lang
        )
        assert suspended_sent["company_suspended.company"] == 1
        assert suspended_sent["match_cancelled.company"] == 1
        keeps = await platform.company_address(w["keeps"])
        assert platform.assert_sent_once_in_language(keeps, lang)["match_cancelled.company"] == 2
        # The company hears that the erased student's proposal is gone, not who they were.
        erased_notice = next(
            m
            for m in platform.mail(keeps, "match_cancelled.company")
            if s["erased"] not in m.get_content() and s["withdrawn"] not in m.get_content()
        )
        assert f"學生 {s['erased']}" not in erased_notice.get_content()


async def test_consent_withdrawal_profile_updates_and_the_cohort_lifecycle(
    platform: Platform,
) -> None:
    """Cases 4, 5 and 7: matching decides on current facts (consent, JLPT), a round needs a
    closed window, no reopening after a round, a finished cohort takes no round; statistics."""
    d = platform.apps
    cohort = await d.cohort()
    company = await platform.company("ja")
    p1 = await d.position(company, cohort, capacity=3, min_jlpt="N3")
    p2 = await d.position(company, cohort, capacity=1, min_jlpt="N3")
    consenting = {lang: await platform.student(lang) for lang in LANGUAGES}
    rival = await platform.student("zh-TW")
    waiting = {lang: await platform.student(lang) for lang in LANGUAGES}
    applications = {}
    for lang in LANGUAGES:
        applications[consenting[lang]] = (await d.apply(consenting[lang], cohort, [p1]))["id"]
        await d.apply(waiting[lang], cohort, [p2])
    await d.apply(rival, cohort, [p2])
    await d.rank(company, p2, [rival, *waiting.values()])
    await platform.synced(cohort, applications=7, positions=2)
    await eventually(lambda: platform.mdb["rankings"].count_documents({"_id": p2}))

    # Case 5: a round needs a closed window; reopening is fine before the first round.
    await platform.matching_knows(cohort, "open")
    refused = await platform.run_round(cohort, expect=409)
    assert detail(refused)["current_state"] == "open"
    assert detail(refused)["allowed"] == ["closed"]
    await d.close(cohort)
    reopened = await d.call("POST", f"/cohorts/{cohort}/open", d.coordinator)
    assert reopened["state"] == "open" and reopened["allowed_actions"] == ["close"]
    await platform.close(cohort)
    first = await platform.run_round(cohort)
    assert sorted((p["student_id"], p["position_id"]) for p in first["pairs"]) == sorted(
        [*((s, p1) for s in consenting.values()), (rival, p2)]
    )
    await platform.cohort_state(cohort, "matching")
    r = await d.client.post(f"/cohorts/{cohort}/open", headers=d.coordinator)
    assert r.status_code == 409
    assert detail(r.json())["current_state"] == "matching"
    assert detail(r.json())["allowed"] == ["finished"]
    for student in waiting.values():
        await platform.application_state(student, cohort, "not_matched")

    # Case 4: consent withdrawn after applying: applications withdrawn, proposals cancelled.
    proposals = await platform.proposals(cohort)
    for lang, student in consenting.items():
        profile = await d.call("GET", f"/students/{student}", d.auth(Role.STUDENT, student))
        body = {
            k: v
            for k, v in profile.items()
            if k not in ("id", "updated_at", "withdrawn_application_ids")
        }
        updated = await d.call(
            "PUT",
            f"/students/{student}",
            d.auth(Role.STUDENT, student),
            {**body, "consent_to_data_use": False},
        )
        assert updated["withdrawn_application_ids"] == [applications[student]], lang
    for student in consenting.values():
        cancelled = await platform.proposal_status(proposals[student]["id"], "cancelled")
        assert cancelled["cancel_reason"] == "consent_withdrawn"
        await platform.answer(cancelled["id"], Role.STUDENT, student, expect=409)
        await platform.application_state(student, cohort, "withdrawn")

    # A profile change reaches matching before the next round: JLPT now below the minimum.
    lowered = waiting["zh-TW"]
    await d.student(lowered, language="zh-TW", jlpt_level="N4")

    async def matching_sees_n4() -> bool:
        doc = await platform.mdb["students"].find_one({"_id": lowered})
        return doc is not None and doc["jlpt_level"] == "N4"

    await eventually(matching_sees_n4)
    await platform.answer(proposals[rival]["id"], Role.STUDENT, rival, accept=False)
    await platform.application_state(rival, cohort, "declined")

    second = await platform.run_round(cohort, respond_within_hours=2 / 3600)
    assert [(p["student_id"], p["position_id"]) for p in second["pairs"]] == [(waiting["ja"], p2)]
    exclusions = await platform.call(
        "GET", f"/rounds/{second['id']}/exclusions", Role.COORDINATOR, "c"
    )
    by_pair = {(e["student_id"], e["position_id"]): e for e in exclusions}
    for student in consenting.values():
        assert by_pair[(student, p1)]["reason"] == "no_consent"
        assert "withdrew consent" in by_pair[(student, p1)]["detail"]
    assert by_pair[(lowered, p2)]["reason"] == "jlpt_below_minimum"
    assert by_pair[(rival, p2)]["reason"] == "previously_declined"
    no_consent = await platform.call(
        "GET", f"/rounds/{second['id']}/exclusions?reason=no_consent", Role.COORDINATOR, "c"
    )
    assert {e["student_id"] for e in no_consent} == set(consenting.values())

    # The proposal nobody answers lapses.
    late = (await platform.proposals(cohort))[waiting["ja"]]
    await platform.proposal_status(late["id"], "expired")
    await platform.application_state(waiting["ja"], cohort, "expired")

    # A finished cohort takes no further round.
    finished = await d.call("POST", f"/cohorts/{cohort}/finish", d.coordinator)
    assert finished["state"] == "finished" and finished["allowed_actions"] == []
    await platform.matching_knows(cohort, "finished")
    refused = await platform.run_round(cohort, expect=409)
    assert detail(refused)["current_state"] == "finished" and detail(refused)["allowed"] == []

    # Case 7: statistics, and an unknown cohort is not a page of zeros.
    stats = await platform.call("GET", f"/cohorts/{cohort}/statistics", Role.COORDINATOR, "c")
    assert stats["rounds"] == 2
    assert stats["proposals"] == {"cancelled": 3, "declined": 1, "expired": 1}
    assert stats["acceptance_rate"] == 0.0  # a decline and a lapse; cancellations left out
    assert stats["acceptance_rate_basis"] == {"accepted": 0, "answered_or_expired": 2}
    assert stats["applicants"] == 7 and stats["match_rate"] == 0.0
    assert stats["applications_by_sector"] == {
        "semiconductor": {"applications": 7, "first_choice": 7}
    }
    assert stats["applications_by_track"] == {
        "development_design_programming": {"applications": 7, "first_choice": 7}
    }
    missing = await platform.matching.get("/cohorts/1999-nothing/statistics", headers=d.coordinator)
    assert missing.status_code == 404

    # Messages, once each, in each reader's language.
    await eventually(platform.settled, timeout=60)
    for lang in LANGUAGES:
        address = f"{consenting[lang]}@example.tw"
        await eventually(lambda a=address: platform.mail(a, "match_cancelled.student"))
        sent = platform.assert_sent_once_in_language(address, lang)
        assert sent["application_withdrawn.student"] == 1
        assert sent["match_cancelled.student"] == 1
        waiting_sent = platform.assert_sent_once_in_language(f"{waiting[lang]}@example.tw", lang)
        # Round 1 left all three unmatched; round 2 the two it did not propose.
        assert waiting_sent["not_matched.student"] == (1 if lang == "ja" else 2), lang
    withdrawn_mail = platform.mail(
        f"{consenting['ja']}@example.tw", "application_withdrawn.student"
    )[0]
    assert "同意が撤回" in withdrawn_mail.get_content()


async def test_status_reminders_confirmation_and_placement_cancellation(
    platform: Platform,
) -> None:
    """Case 6 and the rest: one status per application with the proposal and its deadline;
    a reminder 48 h before the deadline to whoever has not answered, once, also across a
    restart; withdrawal after confirmation is 409; the coordinator cancels a placement."""
    d = platform.apps
    cohort = await d.cohort()
    world: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        company = await platform.company(lang)
        w = {"company": company}
        w["pos_a"] = await d.position(company, cohort)
        w["pos_b"] = await d.position(company, cohort)
        w["a"] = await platform.student(lang)
        # Deadlines follow the stored zone, not the language: this one lives in Japan.
        zone = "Asia/Tokyo" if lang == "en" else "Asia/Taipei"
        w["b"] = await platform.student(lang, time_zone=zone)
        await d.apply(w["a"], cohort, [w["pos_a"]])
        await d.apply(w["b"], cohort, [w["pos_b"]])
        world[lang] = w
    await platform.synced(cohort, applications=6, positions=6)
    await platform.close(cohort)
    # Answers are due 48 hours and 30 seconds from now: reminders fall due in 30 seconds.
    round_doc = await platform.run_round(cohort, respond_within_hours=48 + 30 / 3600)
    assert round_doc["statistics"]["proposed"] == 6
    proposals = await platform.proposals(cohort)

    # Case 6: where a student stands, with the proposal id and the deadline, in one call.
    zh = world["zh-TW"]
    status = await platform.application_state(zh["a"], cohort, "proposed")
    assert status["proposal_id"] == proposals[zh["a"]]["id"]
    assert datetime.fromisoformat(status["respond_by"]) == datetime.fromisoformat(
        round_doc["respond_by"]
    )
    assert status["allowed_actions"] == ["accept_proposal", "decline_proposal", "withdraw"]
    offered = await platform.call(
        "GET", f"/proposals/{status['proposal_id']}", Role.STUDENT, zh["a"]
    )
    assert offered["allowed_actions"] == ["accept", "decline"]

    # Half the parties answer at once; the other half will be reminded.
    for w in world.values():
        accepted = await platform.answer(proposals[w["a"]]["id"], Role.STUDENT, w["a"])
        assert accepted["status"] == "accepted" and accepted["allowed_actions"] == []
        await platform.answer(proposals[w["b"]]["id"], Role.COMPANY, w["company"])

    async def reminded() -> bool:
        for w in world.values():
            company = await platform.company_address(w["company"])
            if not platform.mail(company, "answer_reminder.company"):
                return False
            if not platform.mail(f"{w['b']}@example.tw", "answer_reminder.student"):
                return False
        return True

    await eventually(reminded, timeout=120)

    # A restart, then every proposal event once more: nobody is reminded twice. (Stopped
    # with nothing in flight: a crash between sending and recording is the documented
    # at-least-once case, tested in test_notifications_flow.)
    await eventually(platform.settled, timeout=60)
    await platform.notifications.stop()
    await platform.notifications.start()
    copies = await redeliver(platform, "match-proposed")
    assert platform.notifications.app is not None
    consumer = platform.notifications.app.state.runtime.consumer
    # Rejoining a consumer group per topic takes a while on a loaded machine.
    await eventually(lambda: consumer.counts["duplicate"] >= copies, timeout=120)
    await eventually(platform.settled, timeout=60)

    respond_by = round_doc["respond_by"]
    for lang, w in world.items():
        company = await platform.company_address(w["company"])
        (to_company,) = platform.mail(company, "answer_reminder.company")
        (to_student,) = platform.mail(f"{w['b']}@example.tw", "answer_reminder.student")
        assert not platform.mail(f"{w['a']}@example.tw", "answer_reminder.student")  # answered
        language = Language(lang)
        assert format_deadline(respond_by, language, "Asia/Tokyo") in to_company.get_content()
        zone = "Asia/Tokyo" if lang == "en" else "Asia/Taipei"
        assert format_deadline(respond_by, language, zone) in to_student.get_content()
        assert f"{PORTAL}/student/proposals/{proposals[w['b']]['id']}" in to_student.get_content()
    assert (
        "臺灣時間"
        in platform.mail(f"{zh['b']}@example.tw", "answer_reminder.student")[0].get_content()
    )
    assert (
        "Japan time"
        in platform.mail(f"{world['en']['b']}@example.tw", "answer_reminder.student")[
            0
        ].get_content()
    )
    answered = await platform.ndb["messages"].count_documents(
        {"template": {"$regex": "^answer_reminder"}, "status": "suppressed", "cohort_id": cohort}
    )
    assert answered == 6  # the answered sides' reminders never went out

    # Both sides accept: placements; withdrawing now is refused, erasing too.
    for w in world.values():
        await platform.answer(proposals[w["a"]]["id"], Role.COMPANY, w["company"])
        confirmed = await platform.answer(proposals[w["b"]]["id"], Role.STUDENT, w["b"])
        assert confirmed["status"] == "confirmed"
    placed = await platform.application_state(zh["a"], cohort, "placed")
    assert placed["placement_id"] and placed["allowed_actions"] == []
    r = await d.client.delete(
        f"/applications/{placed['id']}", headers=d.auth(Role.STUDENT, zh["a"])
    )
    assert r.status_code == 409
    assert detail(r.json())["current_state"] == "placed" and detail(r.json())["allowed"] == []
    r = await d.client.delete(f"/students/{zh['a']}", headers=d.auth(Role.STUDENT, zh["a"]))
    assert r.status_code == 409

    # The coordinator cancels the b placements with a reason: seats free, both sides told.
    placements = {
        p["student_id"]: p
        for p in await platform.call(
            "GET", f"/placements?cohort_id={cohort}", Role.COORDINATOR, "c"
        )
    }
    assert len(placements) == 6
    bad = await platform.matching.post(
        f"/placements/{placements[zh['b']]['id']}/cancel",
        headers=d.coordinator,
        json={"reason": "company_withdrew", "note_code": "学生が病気のため"},
    )
    assert bad.status_code == 422 and detail(bad.json())["field"] == "note_code"
    bad = await platform.matching.post(
        f"/placements/{placements[zh['b']]['id']}/cancel",
        headers=d.coordinator,
        json={"reason": "student_erased"},
    )
    assert bad.status_code == 422 and detail(bad.json())["field"] == "reason"
    for w in world.values():
        pid = placements[w["b"]]["id"]
        body = {"reason": "company_withdrew", "note_code": "KK-2027-001"}
        cancelled = await platform.call(
            "POST", f"/placements/{pid}/cancel", Role.COORDINATOR, "c", body
        )
        assert cancelled["status"] == "cancelled" and cancelled["allowed_actions"] == []
        again = await platform.call(
            "POST", f"/placements/{pid}/cancel", Role.COORDINATOR, "c", body, expect=409
        )
        assert detail(again)["current_state"] == "cancelled"
        await platform.application_state(w["b"], cohort, "cancelled")

    stats = await platform.call("GET", f"/cohorts/{cohort}/statistics", Role.COORDINATOR, "c")
    assert stats["placements"] == 3 and stats["placements_cancelled"] == 3
    assert stats["acceptance_rate"] == 1.0  # a cancelled placement was still accepted
    assert stats["match_rate"] == 0.5
    assert stats["hours_to_placement"]["count"] == 3
    assert stats["hours_to_placement"]["median"] >= 0

    # The freed seats go to nobody who was placed there before.
    residual = await platform.run_round(cohort)
    assert residual["pairs"] == []
    exclusions = await platform.call(
        "GET", f"/rounds/{residual['id']}/exclusions", Role.COORDINATOR, "c"
    )
    assert {(e["student_id"], e["reason"]) for e in exclusions} >= {
        (w["b"], "placement_cancelled") for w in world.values()
    }

    await eventually(platform.settled, timeout=60)
    for lang, w in world.items():
        b_address = f"{w['b']}@example.tw"
        await eventually(lambda a=b_address: platform.mail(a, "placement_cancelled.student"))
        student_sent = platform.assert_sent_once_in_language(b_address, lang)
        assert student_sent["answer_reminder.student"] == 1
        assert student_sent["placement_cancelled.student"] == 1
        company = await platform.company_address(w["company"])
        await eventually(lambda c=company: platform.mail(c, "placement_cancelled.company"))
        company_sent = platform.assert_sent_once_in_language(company, lang)
        assert company_sent["answer_reminder.company"] == 1
        assert company_sent["placement_cancelled.company"] == 1
        (notice,) = platform.mail(company, "placement_cancelled.company")
        assert "KK-2027-001" in notice.get_content()
    # This cohort's (the mails name no cohort id: their events are the cohort's).
    events = {
        m["event_id"]
        for m in await platform.ndb["messages"]
        .find({"cohort_id": cohort, "template": "placement_cancelled.coordinator"})
        .to_list()
    }
    coordinator = [
        m
        for m in platform.mail(
            platform.settings.coordinator_email, "placement_cancelled.coordinator"
        )
        if str(m["X-Event-Id"]) in events
    ]
    assert len(coordinator) == 3

    # Every address this module wrote to got each message once.
    ours = [m for m in platform.all_mail() if any(a in str(m["To"]) for a in platform.addresses)]
    sent = Counter((str(m["X-Event-Id"]), str(m["X-Template"]), str(m["To"])) for m in ours)
    assert sent and all(n == 1 for n in sent.values())


async def redeliver(platform: Platform, name: str) -> int:
    """Publish a second copy of every event on a topic: what a relay crash would do."""
    topic = platform.settings.topic(name)
    producer = AIOKafkaProducer(bootstrap_servers=platform.infra.kafka_bootstrap)
    await producer.start()
    try:
        async with TopicReader(platform.infra.kafka_bootstrap, topic) as reader:
            await reader.poll()
            await reader.poll()
            for record in reader.records:
                await producer.send_and_wait(topic, value=record.value, key=record.key)
            assert all(json.loads(r.value)["type"].endswith(".v1") for r in reader.records)
            return len(reader.records)
    finally:
        await producer.stop()
