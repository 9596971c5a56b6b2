"""Wiring of the matching service."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI
from prometheus_client import Histogram
from pydantic import Field

from services.matching import handlers, reporting
from services.matching.api import ROUTERS
from services.matching.directory import ApplicantDirectory
from services.matching.store import MatchingStore
from shared.bounds import MAX_RESPOND_WITHIN_HOURS
from shared.events import (
    InternshipCompleted,
    MatchAccepted,
    MatchCancelled,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    OutcomeRecorded,
    PlacementCancelled,
    PlacementConfirmed,
    RoundCompleted,
)
from shared.events.catalog import ApplicationsNotMatched
from shared.metrics import LATENCY_BUCKETS
from shared.mongo import Session, in_transaction
from shared.runtime import ServiceRuntime, create_http_app
from shared.settings import CommonSettings

NAME = "matching"


class MatchingSettings(CommonSettings):
    http_port: int = Field(default=8002, alias="MATCHING_HTTP_PORT")
    database: str = Field(default="matching", alias="MATCHING_DATABASE")
    # IAESTE-style: both sides answer within two weeks.
    respond_within_hours: float = Field(
        default=14 * 24, gt=0, le=MAX_RESPOND_WITHIN_HOURS, alias="MATCHING_RESPOND_WITHIN_HOURS"
    )
    expiry_sweep_seconds: float = Field(default=30, gt=0, alias="MATCHING_EXPIRY_SWEEP_SECONDS")
    # The applications service: the cohort reports ask it for the applicants' names.
    applications_url: str = Field(default="http://127.0.0.1:8001", alias="APPLICATIONS_URL")


def create_app(settings: MatchingSettings | None = None) -> FastAPI:
    settings = settings or MatchingSettings()
    runtime = ServiceRuntime(
        name=NAME,
        settings=settings,
        database=settings.database,
        publishes=[
            MatchProposed,
            MatchAccepted,
            MatchDeclined,
            MatchExpired,
            PlacementConfirmed,
            RoundCompleted,
            ApplicationsNotMatched,
            MatchCancelled,
            PlacementCancelled,
            InternshipCompleted,
            OutcomeRecorded,
        ],
    )
    store = MatchingStore(runtime.db, runtime.outbox)
    runtime.on_start(store.ensure_indexes)
    handlers.register(runtime, store)

    async def expire_overdue() -> None:
        at = datetime.now(UTC)
        for proposal_id in await store.due_for_expiry(at):

            async def expire(session: Session, pid: str = proposal_id) -> bool:
                return await store.expire(session, pid, at)

            await in_transaction(runtime.client, expire)

    runtime.every("expiry-sweep", settings.expiry_sweep_seconds, expire_overdue)
    app = create_http_app(
        runtime,
        title="Matching service",
        description=(
            "Match rounds (student-proposing deferred acceptance with capacities), proposals, "
            "answers and placements."
        ),
        routers=[*ROUTERS, reporting.router],
    )
    app.state.store = store
    app.state.directory = ApplicantDirectory(settings.applications_url)
    app.state.round_duration = Histogram(
        "kitakyushu_matching_round_duration_seconds",
        "Time to run a match round (its input, the matching, the stability certificate and "
        "the proposals, in one transaction), by outcome: completed, refused, failed",
        ["outcome"],
        buckets=LATENCY_BUCKETS,
        registry=runtime.metrics.registry,
    )
    for outcome in ("completed", "refused", "failed"):
        app.state.round_duration.labels(outcome)  # each series exists (at 0) from the start
    return app
