"""Notifications end to end with the other two services, on the real Kafka, MongoDB and
SMTP sink: right people, right languages, exactly once; outages; erasure; crashes."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from services.notifications.delivery import Deliverer, DeliveryPolicy, Mailer, SmtpConfig
from services.notifications.rendering import Renderer
from services.notifications.store import NotificationsStore
from shared.auth import Role
from shared.events import MatchDeclined, make_event
from shared.kafka import IdempotentProducer, dlq_topic, ensure_topics
from shared.mongo import connect, in_transaction
from tests.driver import ApplicationsDriver
from tests.events import round_completed
from tests.infra import Infra, TopicReader, eventually, read_mailbox, running

pytestmark = pytest.mark.integration

TAG = "notify"
PUBLIC = [
    "application-submitted",
    "match-proposed",
    "match-accepted",
    "match-declined",
    "match-expired",
    "placement-confirmed",
    "round-completed",
    "company-status-changed",
]


@dataclass
class Platform:
    apps: ApplicationsDriver
    matching: httpx.AsyncClient
    notifications: httpx.AsyncClient
    notifications_app: FastAPI
    settings: NotificationsSettings
    mongo: AsyncMongoClient[dict[str, Any]]
    infra: Infra

    @property
    def db(self) -> Any:
        return self.mongo[self.settings.database]

    def mail_to(self, address: str) -> list[EmailMessage]:
        assert self.infra.mailbox is not None
        return [m for m in read_mailbox(self.infra.mailbox) if address in str(m["To"])]

    async def matching_call(
        self, method: str, url: str, role: Role, sub: str, body: Any = None, expect: int = 200
    ) -> Any:
        r = await self.matching.request(method, url, headers=self.apps.auth(role, sub), json=body)
        assert r.status_code == expect, (url, r.text)
        return r.json()

    async def one_opening(self, language: str) -> tuple[str, str, str, str]:
        """A cohort with one company's position and a student who may apply to it:
        (cohort, company, position, student)."""
        d = self.apps
        cohort = await d.cohort()
        company = await d.company()
        position = await d.position(company, cohort)
        return cohort, company, position, await d.student(language=language)

    async def settled(self) -> bool:
        """Nothing left to send now (reminders planned for later do not count)."""
        busy = await self.db["messages"].count_documents(
            {
                "$or": [
                    {"status": "sending"},
                    {"status": "pending", "next_attempt_at": {"$lte": datetime.now(UTC)}},
                ]
            }
        )
        return busy == 0


@pytest.fixture(scope="module")
async def platform(infra: Infra) -> AsyncIterator[Platform]:
    if infra.mailbox is None:
        pytest.skip("needs the embedded SMTP sink to read what was sent")
    settings = infra.settings(
        NotificationsSettings,
        tag=TAG,
        database="nf_notifications",
        smtp_host=infra.smtp_host,
        smtp_port=infra.smtp_port,
        delivery_retry_base_seconds=0.2,
        delivery_max_attempts=10,
        delivery_poll_seconds=0.2,
        coordinator_email=f"coordinator-{TAG}@city.example",
    )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_uri, tz_aware=True)
    notifications_app = create_notifications(settings)
    async with (
        running(
            create_applications(
                infra.settings(ApplicationsSettings, tag=TAG, database="nf_applications")
            )
        ) as apps,
        running(
            create_matching(infra.settings(MatchingSettings, tag=TAG, database="nf_matching"))
        ) as matching,
        running(notifications_app) as notifications,
    ):
        yield Platform(
            ApplicationsDriver(apps, infra),
            matching,
            notifications,
            notifications_app,
            settings,
            mongo,
            infra,
        )
    await mongo.close()


async def redeliver_everything(platform: Platform) -> int:
    """Publish a second copy of every public event so far: what a relay crash would do."""
    producer = AIOKafkaProducer(bootstrap_servers=platform.infra.kafka_bootstrap)
    await producer.start()
    copies = 0
    try:
        for name in PUBLIC:
            topic = platform.settings.topic(name)
            async with TopicReader(platform.infra.kafka_bootstrap, topic) as reader:
                await reader.poll()
                await reader.poll()
                for record in reader.records:
                    await producer.send_and_wait(topic, value=record.value, key=record.key)
                    copies += 1
    finally:
        await producer.stop()
    return copies


async def coordinator_recipient(
    platform: Platform, sub: str, method: str = "PUT", body: Any = None, expect: int = 200
) -> Any:
    r = await platform.notifications.request(
        method,
        f"/recipients/coordinators/{sub}",
        headers=platform.apps.auth(Role.COORDINATOR, sub),
        json=body,
    )
    assert r.status_code == expect, r.text
    return r.json()


async def test_whole_flow_tells_everyone_once_in_their_language(platform: Platform) -> None:
    d = platform.apps
    # Two coordinators `make user` added: one chose English and no placement notices; the
    # other (everything, by default) was removed again and hears nothing.
    chooser, removed = f"coord-a-{TAG}".lower(), f"coord-b-{TAG}".lower()
    chosen = await coordinator_recipient(
        platform,
        chooser,
        body={
            "email": f"{chooser}@city.example",
            "preferred_language": "en",
            "subscriptions": {"placements": False},
        },
    )
    assert chosen["subscriptions"] == {
        "round_summary": True,
        "placements": False,
        "delivery_failures": True,
    }
    assert chosen["time_zone"] == "Asia/Tokyo"
    default = await coordinator_recipient(
        platform, removed, body={"email": f"{removed}@city.example"}
    )
    assert default["preferred_language"] == "ja" and all(default["subscriptions"].values())
    # Each coordinator reads and sets their own choices only.
    r = await platform.notifications.get(
        f"/recipients/coordinators/{chooser}", headers=d.auth(Role.COORDINATOR, removed)
    )
    assert r.status_code == 404
    await coordinator_recipient(platform, removed, "DELETE")
    await coordinator_recipient(platform, removed, "GET", expect=404)
    cohort = await d.cohort()
    company = await d.company(sector="semiconductor", language="ja")
    position = await d.position(company, cohort, title="ウェハ検査ソフトウェア開発")
    student = await d.student(language="zh-TW")
    await d.apply(student, cohort, [position])

    async def in_read_model() -> bool:
        db = platform.mongo["nf_matching"]
        return (
            await db["applications"].count_documents({"cohort_id": cohort}) == 1
            and await db["positions"].count_documents({"cohort_id": cohort}) == 1
        )

    await eventually(in_read_model)
    await d.close(cohort)

    async def closed_in_matching() -> bool:
        db = platform.mongo["nf_matching"]
        return await db["cohorts"].count_documents({"_id": cohort, "state": "closed"}) == 1

    await eventually(closed_in_matching)
    await platform.matching_call(
        "POST", "/rounds", Role.COORDINATOR, "c", {"cohort_id": cohort, "seed": 1}, expect=201
    )
    proposals = await platform.matching_call(
        "GET", f"/proposals?cohort_id={cohort}", Role.COORDINATOR, "c"
    )
    (proposal,) = proposals
    await platform.matching_call(
        "POST", f"/proposals/{proposal['id']}/accept", Role.STUDENT, student
    )
    await platform.matching_call(
        "POST", f"/proposals/{proposal['id']}/accept", Role.COMPANY, company
    )

    student_addr = f"{student}@example.tw"
    company_addr = (await d.call("GET", f"/companies/{company}", d.coordinator))["contact"]["email"]
    coordinator_addr = platform.settings.coordinator_email

    async def coordinator_mail() -> list[EmailMessage]:
        """The coordinator's mails about this cohort (they name no cohort id: the messages
        planned for this cohort's events are its)."""
        planned = platform.db["messages"].find({"cohort_id": cohort, "recipient_id": "coordinator"})
        events = {m["event_id"] for m in await planned.to_list()}
        return [m for m in platform.mail_to(coordinator_addr) if str(m["X-Event-Id"]) in events]

    async def chooser_mail() -> list[EmailMessage]:
        planned = platform.db["messages"].find({"cohort_id": cohort, "recipient_id": chooser})
        events = {m["event_id"] for m in await planned.to_list()}
        mails = platform.mail_to(f"{chooser}@city.example")
        return [m for m in mails if str(m["X-Event-Id"]) in events]

    async def everyone_told() -> bool:
        return (
            len(platform.mail_to(student_addr)) >= 3
            and len(platform.mail_to(company_addr)) >= 5
            and len(await coordinator_mail()) >= 2
            and len(await chooser_mail()) >= 1
        )

    await eventually(
        everyone_told,
        # Three services and a dozen consumer groups on a 2-core machine shared with others.
        timeout=60,
    )

    # Every event a second time: nothing is sent twice.
    consumer = platform.notifications_app.state.runtime.consumer
    duplicates_before = consumer.counts["duplicate"]
    copies = await redeliver_everything(platform)
    assert copies >= 6  # submitted, proposed, accepted x2, confirmed, round completed
    await eventually(lambda: consumer.counts["duplicate"] - duplicates_before >= copies, timeout=30)
    await eventually(platform.settled)

    templates = {
        student_addr: (
            platform.mail_to(student_addr),
            "zh-TW",
            {
                "application_submitted.student",
                "match_proposed.student",
                "placement_confirmed.student",
            },
        ),
        company_addr: (
            platform.mail_to(company_addr),
            "ja",
            {
                "company_pending.company",
                "company_approved.company",
                "match_proposed.company",
                "match_accepted.company",
                "placement_confirmed.company",
            },
        ),
        coordinator_addr: (
            await coordinator_mail(),
            "ja",
            {"round_completed.coordinator", "placement_confirmed.coordinator"},
        ),
        # Once, like everyone: the summary they subscribed to, in their language.
        f"{chooser}@city.example": (await chooser_mail(), "en", {"round_completed.coordinator"}),
    }
    for address, (mails, language, expected) in templates.items():
        sent = Counter(str(m["X-Template"]) for m in mails)
        assert sent == Counter(expected), (address, sent)  # each exactly once
        assert {str(m["Content-Language"]) for m in mails} == {language}, address
    assert not platform.mail_to(f"{removed}@city.example")
    registered = next(
        m
        for m in platform.mail_to(company_addr)
        if str(m["X-Template"]) == "company_pending.company"
    )
    assert "審査" in registered.get_content() and "様" in registered.get_content()

    confirmed = next(
        m
        for m in platform.mail_to(student_addr)
        if str(m["X-Template"]) == "placement_confirmed.student"
    )
    body = confirmed.get_content()
    assert "恭喜" in body and "ウェハ検査ソフトウェア開発" in body
    assert "特定活動" in body and "2027年7月1日" in body
    assert "您好" in body
    proposed_to_company = next(
        m
        for m in platform.mail_to(company_addr)
        if str(m["X-Template"]) == "match_proposed.company"
    )
    assert f"學生 {student}" in proposed_to_company.get_content()  # the student's name
    assert "様" in proposed_to_company.get_content()

    listed = await platform.notifications.get(
        f"/deliveries?cohort_id={cohort}", headers=d.coordinator
    )
    assert listed.status_code == 200
    by_status = Counter((m["template"], m["status"]) for m in listed.json())
    # 8 to the parties and the program address, 1 to the coordinator who subscribed.
    assert sum(n for (_, status), n in by_status.items() if status == "sent") == 9
    # The answer reminders were planned with the proposal and left the queue when the
    # placement was confirmed: nobody is reminded of a question they answered.
    assert by_status[("answer_reminder.student", "suppressed")] == 1, by_status
    assert by_status[("answer_reminder.company", "suppressed")] == 1
    assert len(listed.json()) == 11
    forbidden = await platform.notifications.get(
        "/deliveries", headers=d.auth(Role.STUDENT, student)
    )
    assert forbidden.status_code == 403


async def test_smtp_outage_then_recovery_loses_nothing(platform: Platform) -> None:
    servers = platform.infra.servers
    assert servers is not None
    d = platform.apps
    cohort, _, position, student = await platform.one_opening("en")
    await eventually(platform.settled)
    servers.stop_smtp()
    try:
        await d.apply(student, cohort, [position])

        async def failing() -> bool:
            msg = await platform.db["messages"].find_one(
                {"recipient_id": student, "template": "application_submitted.student"}
            )
            return bool(msg and msg["attempts"] >= 2 and msg["status"] in ("pending", "sending"))

        await eventually(failing, timeout=30)
        failed_once = await platform.db["messages"].find_one({"recipient_id": student})
        assert failed_once["last_error"]
    finally:
        servers.start_smtp()
    await eventually(lambda: platform.mail_to(f"{student}@example.tw"), timeout=30)
    await eventually(platform.settled)
    mails = platform.mail_to(f"{student}@example.tw")
    assert len(mails) == 1
    assert str(mails[0]["Content-Language"]) == "en"
    assert "Dear" in mails[0].get_content()
    stored = await platform.db["messages"].find_one({"recipient_id": student})
    assert stored["status"] == "sent" and stored["attempts"] >= 2


async def test_a_failed_message_sent_again_starts_afresh(platform: Platform) -> None:
    """The coordinator's "Send again": the message is due at once with its attempts and its
    old reason cleared (the delivery log would otherwise show the old failure under
    "Waiting to be sent"), and it goes out."""
    d = platform.apps
    cohort, _, position, student = await platform.one_opening("en")
    await eventually(platform.settled)
    messages = platform.db["messages"]
    deliverer = platform.notifications_app.state.deliverer
    async with deliverer._one_pass:  # the sender waits while the failure is staged

        async def planned() -> Any:
            return await messages.find_one(
                {"recipient_id": student, "template": "application_submitted.student"}
            )

        await d.apply(student, cohort, [position])
        message = await eventually(planned)
        failure = {"status": "failed", "attempts": 10, "last_error": "SMTPServerDisconnected: x"}
        await messages.update_one({"_id": message["_id"]}, {"$set": failure})
        r = await platform.notifications.post(
            f"/deliveries/{message['_id']}/retry", headers=d.auth(Role.COORDINATOR, "coordinator")
        )
        assert r.status_code == 200 and r.json()["status"] == "pending", r.text
        again = await messages.find_one({"_id": message["_id"]})
        assert (again["status"], again["attempts"], again["last_error"]) == ("pending", 0, None)
    await eventually(lambda: platform.mail_to(f"{student}@example.tw"), timeout=30)

    async def recorded() -> Any:
        # The sink saves the mail a moment before the sender records the outcome.
        found = await messages.find_one({"_id": message["_id"], "status": {"$ne": "sending"}})
        return found

    sent = await eventually(recorded, timeout=10)
    assert sent["status"] == "sent" and sent["last_error"] is None


async def test_erased_contact_receives_nothing_further(platform: Platform) -> None:
    d = platform.apps
    cohort, company, position, student = await platform.one_opening("ja")
    await d.apply(student, cohort, [position])
    await eventually(lambda: platform.mail_to(f"{student}@example.tw"))

    await d.call("DELETE", f"/students/{student}", d.auth(Role.STUDENT, student))

    async def erased() -> bool:
        return await platform.db["erasures"].find_one({"_id": f"student:{student}"}) is not None

    await eventually(erased)
    assert await platform.db["contacts"].find_one({"_id": f"student:{student}"}) is None
    stored = await platform.db["messages"].find({"recipient_id": student}).to_list()
    assert stored and all(m["body"] is None and m["to"] is None for m in stored)

    # A later event about the erased student: they get nothing; the company is still told.
    event = make_event(
        MatchDeclined(
            proposal_id="prop-erased",
            round_id="r",
            cohort_id=cohort,
            student_id=student,
            position_id=position,
            company_id=company,
            party="company",
            declined_at=datetime.now(UTC),
        ),
        source="/tests",
        subject="prop-erased",
    )
    producer = AIOKafkaProducer(bootstrap_servers=platform.infra.kafka_bootstrap)
    await producer.start()
    await producer.send_and_wait(
        platform.settings.topic("match-declined"), value=event.to_bytes(), key=b"prop-erased"
    )
    await producer.stop()

    async def planned() -> list[dict[str, Any]]:
        docs = await platform.db["messages"].find({"event_id": str(event.id)}).to_list()
        return (
            docs
            if len(docs) == 2 and all(m["status"] in ("sent", "suppressed") for m in docs)
            else []
        )

    docs = {m["recipient_id"]: m for m in await eventually(planned)}
    assert docs[student]["status"] == "suppressed"
    assert docs[company]["status"] == "sent"
    assert len(platform.mail_to(f"{student}@example.tw")) == 1  # only the one from before
    # The company's message no longer names the erased student: their name is gone.
    assert f"學生 {student}" not in (docs[company]["body"] or "")


class CrashAfterSend(Deliverer):
    """Dies once between the SMTP server's acceptance and the log update."""

    crashed = False

    async def record_sent(self, message, email, meta) -> None:  # type: ignore[no-untyped-def]
        if not self.crashed:
            self.crashed = True
            raise SystemExit("killed after send, before record")
        await super().record_sent(message, email, meta)


async def _deliverer(
    infra: Infra,
    database: str,
    *,
    port: int,
    max_attempts: int,
    lease: float,
    cls: type[Deliverer] = Deliverer,
) -> tuple[Deliverer, Any]:
    settings = infra.settings(NotificationsSettings, tag=TAG)
    client = connect(infra.mongodb_uri)
    store = NotificationsStore(client[database])
    producer = IdempotentProducer(infra.kafka_bootstrap, "delivery-test")
    await producer.start()
    deliverer = cls(
        store,
        Mailer(
            SmtpConfig(
                infra.smtp_host, port, None, None, False, False, 5, "test <t@example.invalid>"
            )
        ),
        Renderer(),
        DeliveryPolicy(
            max_attempts=max_attempts,
            retry_base_seconds=0.05,
            lease_seconds=lease,
            poll_seconds=0.1,
            wait_for_facts_seconds=60,
            coordinator_email="c@example.invalid",
            coordinator_name="C",
            coordinator_language="en",
        ),
        producer,
        settings,
    )
    # One round-completed message for the coordinator: needs no contact or position facts.
    event = round_completed(f"round-{database}", database)
    from services.notifications.domain import plan

    await in_transaction(
        client, lambda s: store.plan_messages(s, event, "round-completed", plan(event))
    )
    return deliverer, (client, producer, store)


async def test_a_crash_between_send_and_record_resends_never_loses(infra: Infra) -> None:
    assert infra.mailbox is not None
    deliverer, (client, producer, store) = await _deliverer(
        infra, "nf_crash", port=infra.smtp_port, max_attempts=3, lease=0.3, cls=CrashAfterSend
    )
    try:
        with pytest.raises(SystemExit):
            await deliverer.deliver_due()
        (message,) = await store.messages.find().to_list()
        assert message["status"] == "sending"  # the log never heard of the send

        await eventually(lambda: _deliver_once_due(deliverer), timeout=10)
        (message,) = await store.messages.find().to_list()
        assert message["status"] == "sent"
        copies = [m for m in read_mailbox(infra.mailbox) if "round-nf_crash" in m.get_content()]
        # The documented one-sided risk: sent twice, same Message-ID; never zero times.
        assert len(copies) == 2
        assert copies[0]["Message-ID"] == copies[1]["Message-ID"]
    finally:
        await producer.stop()
        await client.close()


async def _deliver_once_due(deliverer: Deliverer) -> bool:
    return await deliverer.deliver_due() > 0


async def test_bounded_retries_then_failed_and_reported_on_the_dlq(infra: Infra) -> None:
    from deploy.embedded.processes import free_port

    settings = infra.settings(NotificationsSettings, tag=TAG)
    await ensure_topics(
        infra.kafka_bootstrap, [settings.topic("round-completed")], partitions=1, replication=1
    )
    deliverer, (client, producer, store) = await _deliverer(
        infra, "nf_dead", port=free_port(), max_attempts=2, lease=5
    )
    try:
        async with TopicReader(
            infra.kafka_bootstrap, settings.topic(dlq_topic("round-completed"))
        ) as dlq:

            async def failed() -> bool:
                await deliverer.deliver_due()
                (message,) = await store.messages.find().to_list()
                return message["status"] == "failed"

            await eventually(failed, timeout=15)
            records = await dlq.wait_for(
                lambda rs: any(
                    dict(r.headers).get("dlq-consumer") == b"notifications-delivery"
                    and b"nf_dead" in r.value
                    for r in rs
                )
            )
        record = next(r for r in records if b"nf_dead" in r.value)
        headers = dict(record.headers)
        assert headers["dlq-attempts"] == b"2"
        assert b"Connect" in headers["dlq-error"] or b"refused" in headers["dlq-error"].lower()
        assert json.loads(record.value)["data"]["cohort_id"] == "nf_dead"
    finally:
        await producer.stop()
        await client.close()


async def test_one_polls_contacts_apply_in_order_and_a_mislabelled_one_is_refused(
    platform: Platform,
) -> None:
    """Contacts are applied a poll at a time (upserts in one bulk write); per party the last
    record or erasure still wins, and a record under another party's key is dead-lettered
    without holding back the rest."""
    topic = platform.settings.topic("contacts")
    run = uuid.uuid4().hex[:8]
    again, gone, other, wrong = (f"student:stu-{run}-{n}" for n in ("again", "gone", "b", "x"))

    def record(key: str) -> bytes:
        party_id = key.split(":", 1)[1]
        contact = {"party_id": party_id, "party_type": "student", "name": "N", "email": "n@x.tw"}
        return json.dumps(contact).encode()

    producer = AIOKafkaProducer(bootstrap_servers=platform.infra.kafka_bootstrap, linger_ms=50)
    await producer.start()
    try:
        async with TopicReader(platform.infra.kafka_bootstrap, dlq_topic(topic)) as dlq:
            sends = [
                (again, record(again)),
                (gone, record(gone)),
                (again, None),  # erased, then given again below: present in the end
                (wrong, record(other)),  # another party's record under this key
                (gone, None),
                (other, record(other)),
                (again, record(again)),
            ]
            futures = [
                await producer.send(topic, key=key.encode(), value=value) for key, value in sends
            ]
            await asyncio.gather(*futures)
            (refused,) = await dlq.wait_for(lambda rs: any(r.key == wrong.encode() for r in rs))
        assert dict(refused.headers)["dlq-error"].startswith(b"rejected: the contact of")
    finally:
        await producer.stop()
    db = platform.db

    async def applied() -> bool:
        return await db["contacts"].find_one({"_id": other}) is not None

    await eventually(applied)
    assert await db["contacts"].find_one({"_id": again}) is not None
    assert await db["erasures"].find_one({"_id": again}) is None
    assert await db["contacts"].find_one({"_id": gone}) is None
    assert await db["erasures"].find_one({"_id": gone}) is not None
    assert await db["contacts"].find_one({"_id": wrong}) is None


async def test_failures_reach_subscribed_coordinators_as_one_digest_per_window(
    infra: Infra,
) -> None:
    from deploy.embedded.processes import free_port
    from shared.bounds import ID_PATTERN

    deliverer, (client, producer, store) = await _deliverer(
        infra, "nf_digest", port=free_port(), max_attempts=1, lease=5
    )
    try:
        await store.ensure_indexes()
        await store.put_coordinator(
            "coord-digest", {"email": "digest@city.example", "name": "Digest"}
        )
        await store.put_coordinator(
            "coord-quiet",
            {
                "email": "quiet@city.example",
                "name": "Quiet",
                "subscriptions": {
                    "round_summary": True,
                    "placements": True,
                    "delivery_failures": False,
                },
            },
        )

        async def failed() -> bool:
            await deliverer.deliver_due()
            message = await store.messages.find_one({"template": "round_completed.coordinator"})
            return message is not None and message["status"] == "failed"

        await eventually(failed, timeout=15)
        (digest,) = await store.messages.find(
            {"template": "delivery_failures.coordinator"}
        ).to_list()
        assert digest["recipient_id"] == "coord-digest"  # not the one who turned it off
        assert digest["data"]["failed_count"] == 1
        # An id the delivery log's "Send again" takes (POST /deliveries/{id}/retry).
        assert re.fullmatch(ID_PATTERN, digest["_id"]), digest["_id"]
        # Sent when its window ends, so that a burst of failures is one message.
        assert digest["next_attempt_at"] > datetime.now(UTC)
        assert digest["next_attempt_at"].isoformat() == digest["data"]["window_end"]
        # More failures in the same window: the same message, counting them.
        await store.note_failures(5, datetime.now(UTC), program_address=False)
        (digest,) = await store.messages.find(
            {"template": "delivery_failures.coordinator"}
        ).to_list()
        assert digest["data"]["failed_count"] == 6
        # A coordinator the operator removes receives nothing further.
        assert await store.remove_coordinator("coord-digest")
        gone = await store.messages.find_one({"_id": digest["_id"]})
        assert gone["status"] == "suppressed" and gone["last_error"] == "recipient erased"
        assert "coord-digest" not in await store.coordinator_subscribers()
    finally:
        await producer.stop()
        await client.close()
