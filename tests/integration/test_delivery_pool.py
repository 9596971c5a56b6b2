"""The SMTP connection pool and batched delivery against the real embedded SMTP sink and
MongoDB: a broken connection is replaced, the concurrency bound and the rate limit hold,
claims never overlap, and the sender is woken only once the planning transaction committed."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from services.notifications.app import NotificationsSettings, build_deliverer
from services.notifications.domain import plan
from services.notifications.smtp_pool import Mailer, SmtpConfig
from services.notifications.store import NotificationsStore
from shared.kafka import IdempotentProducer
from shared.mongo import Session, after_commit, connect, in_transaction
from tests.events import round_completed
from tests.infra import Infra, eventually, read_mailbox

pytestmark = pytest.mark.integration


def smtp_config(infra: Infra) -> SmtpConfig:
    return SmtpConfig(
        infra.smtp_host, infra.smtp_port, None, None, False, False, 10, "pool <t@example.invalid>"
    )


def mail(tag: str, n: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "pool <t@example.invalid>"
    message["To"] = f"{tag}-{n}@example.invalid"
    message["Subject"] = f"{tag} #{n}"
    message.set_content(f"message {n} of {tag}")
    return message


def arrivals(mailbox: Path, tag: str) -> list[float]:
    """When the sink accepted each message of `tag` (its file names carry the time)."""
    times = []
    for path in mailbox.glob("*.eml"):
        if f"To: {tag}-".encode() in path.read_bytes():
            stamp = path.name.split("-", 1)[0]
            times.append(datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").timestamp())
    return sorted(times)


@pytest.fixture
def mailbox(infra: Infra) -> Path:
    if infra.mailbox is None:
        pytest.skip("needs the embedded SMTP sink to read what was sent")
    return infra.mailbox


async def test_connections_are_reused_and_a_broken_one_is_replaced(
    infra: Infra, mailbox: Path
) -> None:
    assert infra.servers is not None
    tag = f"reuse-{uuid.uuid4().hex[:6]}"
    mailer = Mailer(smtp_config(infra), connections=2)
    try:
        for n in range(5):
            await mailer.send(mail(tag, n))
        assert mailer.stats.opened == 1 and mailer.stats.reused == 4  # one connection, kept

        # The sink restarts: the kept connection is dead. The next send still goes out, over
        # a new connection, without an error reaching the caller.
        infra.servers.stop_smtp()
        infra.servers.start_smtp()
        await mailer.send(mail(tag, 5))
        assert mailer.stats.opened == 2
        await mailer.send(mail(tag, 6))
        assert mailer.stats.opened == 2  # and the new one is kept in turn
    finally:
        await mailer.close()
    assert mailer.idle_connections == 0
    assert len(arrivals(mailbox, tag)) == 7


async def test_a_connection_that_breaks_during_a_send_is_replaced_and_the_send_retried(
    infra: Infra, mailbox: Path
) -> None:
    tag = f"broken-{uuid.uuid4().hex[:6]}"
    mailer = Mailer(smtp_config(infra), connections=1)
    try:
        await mailer.send(mail(tag, 0))
        (kept,) = mailer._idle
        # Cut the socket under aiosmtplib's feet (as a relay's idle timeout or a network
        # drop would) and send before it can notice: the send finds out on the wire.
        assert kept.smtp.transport is not None
        kept.smtp.transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        await mailer.send(mail(tag, 1))
        assert mailer.stats.replaced == 1 and mailer.stats.opened == 2
    finally:
        await mailer.close()
    assert len(arrivals(mailbox, tag)) == 2


async def test_concurrent_sends_stay_within_the_pool(infra: Infra, mailbox: Path) -> None:
    tag = f"bound-{uuid.uuid4().hex[:6]}"
    mailer = Mailer(smtp_config(infra), connections=3)
    try:
        await asyncio.gather(*(mailer.send(mail(tag, n)) for n in range(30)))
    finally:
        await mailer.close()
    assert mailer.stats.peak_in_flight == 3  # used, and never more
    assert mailer.stats.opened <= 3
    assert len(arrivals(mailbox, tag)) == 30


async def test_the_rate_limit_holds_at_the_relay(infra: Infra, mailbox: Path) -> None:
    tag = f"rate-{uuid.uuid4().hex[:6]}"
    rate, count = 10, 25
    mailer = Mailer(smtp_config(infra), connections=4, per_second=rate)
    started = time.monotonic()
    try:
        await asyncio.gather(*(mailer.send(mail(tag, n)) for n in range(count)))
    finally:
        await mailer.close()
    assert time.monotonic() - started >= (count - 1) / rate
    seen = arrivals(mailbox, tag)
    assert len(seen) == count
    # Starts are 1/rate apart; network jitter may bring two arrivals closer, never a burst.
    busiest = max(sum(1 for t in seen if first <= t < first + 1.0) for first in seen)
    assert busiest <= rate + 1


@dataclass
class Rig:
    store: NotificationsStore
    settings: NotificationsSettings
    producer: IdempotentProducer
    client: Any
    database: str

    async def plan_round_messages(self, count: int) -> list[str]:
        """`count` round-completed notices to the coordinator (they need no contact facts)."""
        ids = []
        for n in range(count):
            event = round_completed(f"round-{self.database}-{n}", self.database, n + 1)

            async def work(session: Session, event: Any = event) -> None:
                await self.store.plan_messages(session, event, "round-completed", plan(event))

            await in_transaction(self.client, work)
            ids.append(f"round-{self.database}-{n}")
        return ids


@pytest.fixture
async def rig(infra: Infra) -> AsyncIterator[Rig]:
    database = f"pool_{uuid.uuid4().hex[:8]}"
    settings = infra.settings(
        NotificationsSettings,
        database=database,
        smtp_host=infra.smtp_host,
        smtp_port=infra.smtp_port,
        coordinator_email=f"{database}@city.example",
        delivery_retry_base_seconds=0.05,
    )
    client = connect(infra.mongodb_uri)
    store = NotificationsStore(client[database])
    await store.ensure_indexes()
    producer = IdempotentProducer(infra.kafka_bootstrap, "pool-test")
    await producer.start()
    try:
        yield Rig(store, settings, producer, client, database)
    finally:
        await producer.stop()
        await client.close()


def delivered(mailbox: Path, rig: Rig) -> list[EmailMessage]:
    return [m for m in read_mailbox(mailbox) if rig.database in str(m["To"])]


async def test_a_batch_goes_out_once_over_a_bounded_pool(rig: Rig, mailbox: Path) -> None:
    settings = rig.settings.model_copy(update={"delivery_concurrency": 3, "delivery_batch_size": 8})
    deliverer = build_deliverer(settings, rig.store, rig.producer)
    await rig.plan_round_messages(20)
    try:
        assert await deliverer.deliver_due() == 20  # batches of 8, 8, 4
    finally:
        await deliverer.mailer.close()
    assert deliverer.mailer.stats.peak_in_flight == 3
    assert deliverer.mailer.stats.opened <= 3
    stored = await rig.store.messages.find().to_list()
    assert [m["status"] for m in stored] == ["sent"] * 20
    mails = delivered(mailbox, rig)
    assert len(mails) == 20
    assert len({m["Message-ID"] for m in mails}) == 20


async def test_concurrent_claims_never_take_the_same_message(rig: Rig) -> None:
    await rig.plan_round_messages(15)
    lease = datetime.now(UTC) + timedelta(seconds=60)
    first, second = await asyncio.gather(
        rig.store.claim_due(lease, limit=10), rig.store.claim_due(lease, limit=10)
    )
    a, b = {m["_id"] for m in first}, {m["_id"] for m in second}
    assert not a & b
    assert len(a | b) == 15
    assert all(m["status"] == "sending" for m in [*first, *second])
    # Nothing is due while the leases hold; a lease that ran out makes its message due again.
    assert await rig.store.claim_due(lease, limit=50) == []
    expired = first[0]["_id"]
    await rig.store.messages.update_one(
        {"_id": expired}, {"$set": {"next_attempt_at": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    (again,) = await rig.store.claim_due(lease, limit=50)
    assert again["_id"] == expired and again["lease_id"] != first[0]["lease_id"]
    # The first holder's late outcome no longer counts: the new holder's claim wins.
    assert await rig.store.record([(first[0], {"status": "sent"})]) == 0
    assert await rig.store.record([(again, {"status": "sent"})]) == 1


async def test_a_claim_passes_over_messages_in_flight_and_still_fills_its_batch(
    rig: Rig,
) -> None:
    # Messages the sender holds in flight read "pending" again when the database lost their
    # claim; the next claim skips them and takes as many others as it asked for.
    await rig.plan_round_messages(15)
    lease = datetime.now(UTC) + timedelta(seconds=60)
    ids = sorted(m["_id"] for m in await rig.store.messages.find().to_list())
    flying = frozenset(ids[:5])
    claimed = await rig.store.claim_due(lease, limit=10, excluding=flying)
    assert len(claimed) == 10 and not flying & {m["_id"] for m in claimed}
    assert await rig.store.claim_due(lease, limit=10, excluding=flying) == []
    # Once they are no longer in flight, they are claimed like any other.
    assert {m["_id"] for m in await rig.store.claim_due(lease, limit=10)} == flying


async def test_the_next_due_message_is_looked_for_as_far_as_the_sender_sleeps(rig: Rig) -> None:
    await rig.plan_round_messages(1)
    later = datetime.now(UTC) + timedelta(hours=1)
    await rig.store.messages.update_many({}, {"$set": {"next_attempt_at": later}})
    assert await rig.store.next_due(timedelta(seconds=10)) is None
    found = await rig.store.next_due(timedelta(hours=2))
    assert found is not None and abs((found - later).total_seconds()) < 0.01


async def test_text_naming_an_erased_party_is_not_stored_after_the_send(rig: Rig) -> None:
    (message_id,) = await rig.plan_round_messages(1)
    await rig.store.messages.update_one(
        {"recipient_id": "coordinator"}, {"$set": {"about": ["stu-erased"]}}
    )
    (claimed,) = await rig.store.claim_due(datetime.now(UTC) + timedelta(seconds=60), limit=5)
    # Erased while the mail was on its way: the send counts, the text naming them is not kept.
    await in_transaction(rig.client, lambda s: rig.store.erase(s, "student", "stu-erased"))
    sent = {"status": "sent", "to": "x <x@example>", "subject": "$ 5 about 林", "body": "林"}
    assert await rig.store.record([(claimed, sent)]) == 1
    stored = await rig.store.messages.find_one({"_id": claimed["_id"]})
    assert stored["status"] == "sent" and stored["erased"] is True
    assert stored["to"] is None and stored["subject"] is None and stored["body"] is None
    # The event is stored once, beside its messages, not copied into each.
    assert "event_json" not in stored
    event = await rig.store.stored_event(stored["event_id"])
    assert event is not None and message_id in event["event_json"]


async def test_the_sender_is_woken_after_the_planning_commit(rig: Rig, mailbox: Path) -> None:
    # No safety-net polling within the test's time: only the wake-up can deliver.
    settings = rig.settings.model_copy(update={"delivery_poll_seconds": 3600})
    deliverer = build_deliverer(settings, rig.store, rig.producer)
    runner = asyncio.create_task(deliverer.run())
    try:
        await eventually(lambda: deliverer.passes == 1)  # looked once, found nothing, sleeps
        event = round_completed(f"round-{rig.database}-woken", rig.database)

        async def planning(session: Session) -> None:
            await rig.store.plan_messages(session, event, "round-completed", plan(event))
            after_commit(session, deliverer.wake)
            # Inside the transaction: the sender has not been told yet.
            assert not deliverer._wake.is_set()
            await asyncio.sleep(0.2)  # time a too-early sender would have used to look
            assert not deliverer._wake.is_set()

        await in_transaction(rig.client, planning)
        await eventually(lambda: len(delivered(mailbox, rig)) == 1, timeout=15)
        assert deliverer.counts["sent"] == 1
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert deliverer.mailer.idle_connections == 0  # closed on the way out


async def test_after_commit_runs_once_after_commit_and_never_after_abort(rig: Rig) -> None:
    calls: list[str] = []
    coll = rig.store.db["hooks"]

    async def committed(session: Session) -> None:
        await coll.insert_one({"_id": "a"}, session=session)
        after_commit(session, lambda: calls.append("committed"))
        after_commit(session, lambda: calls.append("second"))
        assert calls == []

    await in_transaction(rig.client, committed)
    assert calls == ["committed", "second"]

    class Abort(Exception):
        pass

    async def aborted(session: Session) -> None:
        await coll.insert_one({"_id": "b"}, session=session)
        after_commit(session, lambda: calls.append("aborted"))
        raise Abort

    with pytest.raises(Abort):
        await in_transaction(rig.client, aborted)
    assert calls == ["committed", "second"]
    assert await coll.find_one({"_id": "b"}) is None

    # Outside a transaction the write is already applied: the callback runs at once.
    async with rig.client.start_session() as session:
        after_commit(session, lambda: calls.append("now"))
    assert calls[-1] == "now"


async def test_a_sent_mail_is_recorded_across_an_outage_that_lost_its_claim(
    rig: Rig, mailbox: Path
) -> None:
    """The SMTP server took the mails, then the database went down and came back without
    their claims ("pending" and due again): the outcomes are retried until recorded, and
    meanwhile this sender claims none of them again, so none is sent twice."""
    deliverer = build_deliverer(rig.settings, rig.store, rig.producer)
    record = rig.store.record
    failures = 0
    claimed_meanwhile: list[Any] = []

    async def record_after_an_outage(outcomes: list[tuple[Any, Any]]) -> int:
        nonlocal failures
        if failures < 2:
            failures += 1
            await rig.store.messages.update_many(
                {"_id": {"$in": [m["_id"] for m, _ in outcomes]}},
                {"$set": {"status": "pending", "next_attempt_at": datetime.now(UTC)}},
            )
            claimed_meanwhile.extend(await deliverer._claim())
            raise AutoReconnect("connection refused (the database is restarting)")
        return await record(outcomes)

    rig.store.record = record_after_an_outage  # type: ignore[method-assign]
    await rig.plan_round_messages(3)
    try:
        assert await deliverer.deliver_due() == 3
    finally:
        await deliverer.mailer.close()
    assert failures == 2 and claimed_meanwhile == []
    stored = await rig.store.messages.find().to_list()
    assert [m["status"] for m in stored] == ["sent"] * 3
    mails = delivered(mailbox, rig)
    assert len(mails) == 3 and len({m["Message-ID"] for m in mails}) == 3
    assert not deliverer._in_flight
