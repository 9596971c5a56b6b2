"""Wiring of the notifications service."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import Field, SecretStr

from services.notifications import handlers, telemetry
from services.notifications.api import ROUTERS
from services.notifications.delivery import Deliverer, DeliveryPolicy, Mailer, SmtpConfig
from services.notifications.domain import is_real_address
from services.notifications.fanout import Planner
from services.notifications.rendering import Renderer, Site
from services.notifications.store import NotificationsStore
from shared.events.timezones import TimeZoneName
from shared.kafka import IdempotentProducer
from shared.runtime import ServiceRuntime, create_http_app
from shared.settings import CommonSettings

NAME = "notifications"


class NotificationsSettings(CommonSettings):
    http_port: int = Field(default=8003, alias="NOTIFICATIONS_HTTP_PORT")
    database: str = Field(default="notifications", alias="NOTIFICATIONS_DATABASE")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_seconds: float = 15
    mail_from: str = "Kitakyushu Internship Program <internships@kitakyushu-internships.invalid>"
    # The program's own address for the coordinator's mails (round summaries, placements,
    # delivery failures), besides every coordinator who subscribed on the portal. Empty (the
    # default) or an address under .invalid: none.
    coordinator_email: str = ""
    coordinator_name: str = "雇用・産業人材政策課 ご担当者"
    coordinator_language: str = "ja"
    coordinator_time_zone: TimeZoneName = "Asia/Tokyo"
    # Every mail names this address for questions (its sender address takes no replies).
    contact_email: str = "internships@kitakyushu-internships.invalid"
    delivery_max_attempts: int = Field(default=6, ge=1)
    delivery_retry_base_seconds: float = Field(default=5, gt=0)
    delivery_lease_seconds: float = Field(default=120, gt=0)
    # A safety net only: the sender is woken when a message is planned and sleeps until the
    # earliest retry; this bounds how long a message planned elsewhere (another replica) waits.
    delivery_poll_seconds: float = Field(default=10, gt=0)
    # Messages claimed per pass; each pass records their outcomes in one bulk write.
    delivery_batch_size: int = Field(default=50, ge=1, le=1000)
    # SMTP connections kept open and used at once (= concurrent sends).
    delivery_concurrency: int = Field(default=4, ge=1, le=64)
    # A relay's sending limit in messages per second; 0 = none.
    delivery_rate_per_second: float = Field(default=0, ge=0)
    # Relays cap messages per session and drop idle sessions: reconnect before they do.
    smtp_max_messages_per_connection: int = Field(default=100, ge=1)
    smtp_idle_seconds: float = Field(default=30, gt=0)
    # How long a message may wait for its recipient's contact or its position facts.
    delivery_wait_for_facts_seconds: float = Field(default=3600, gt=0)


def build_deliverer(
    settings: NotificationsSettings, store: NotificationsStore, producer: IdempotentProducer
) -> Deliverer:
    """The sender as the service runs it (the pipeline benchmark drives this one too)."""
    mailer = Mailer(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            start_tls=settings.smtp_starttls,
            use_tls=settings.smtp_ssl,
            timeout=settings.smtp_timeout_seconds,
            sender=settings.mail_from,
        ),
        connections=settings.delivery_concurrency,
        per_second=settings.delivery_rate_per_second or None,
        max_messages_per_connection=settings.smtp_max_messages_per_connection,
        idle_seconds=settings.smtp_idle_seconds,
    )
    return Deliverer(
        store,
        mailer,
        Renderer(),
        DeliveryPolicy(
            max_attempts=settings.delivery_max_attempts,
            retry_base_seconds=settings.delivery_retry_base_seconds,
            lease_seconds=settings.delivery_lease_seconds,
            poll_seconds=settings.delivery_poll_seconds,
            wait_for_facts_seconds=settings.delivery_wait_for_facts_seconds,
            coordinator_email=settings.coordinator_email,
            coordinator_name=settings.coordinator_name,
            coordinator_language=settings.coordinator_language,
            coordinator_time_zone=settings.coordinator_time_zone,
            site=Site(
                public_base_url=settings.public_base_url, contact_email=settings.contact_email
            ),
            batch_size=settings.delivery_batch_size,
        ),
        producer,
        settings,
    )


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    runtime = ServiceRuntime(name=NAME, settings=settings, database=settings.database, publishes=[])
    store = NotificationsStore(runtime.db)
    deliverer = build_deliverer(settings, store, runtime.producer)
    runtime.on_start(store.ensure_indexes)
    # `program_address`: COORDINATOR_EMAIL is a real address and gets the program mails
    # too, besides the coordinators who subscribed to them.
    planner = Planner(
        store,
        deliverer.wake,
        program_address=is_real_address(settings.coordinator_email),
        poll_seconds=settings.delivery_poll_seconds,
    )
    handlers.register(runtime, store, planner)
    runtime.background("delivery", deliverer.run)
    runtime.background("fan-out", planner.run)
    telemetry.register(runtime.metrics, deliverer, store)
    app = create_http_app(
        runtime,
        title="Notifications service",
        description="Tells every party at every step, in zh-TW, ja or en, by e-mail.",
        routers=ROUTERS,
    )
    app.state.store = store
    app.state.deliverer = deliverer
    app.state.planner = planner
    return app
