"""Wiring of the matching service."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI
from pydantic import Field

from services.matching import handlers
from services.matching.api import ROUTERS
from services.matching.store import MatchingStore
from shared.bounds import MAX_RESPOND_WITHIN_HOURS
from shared.events import (
    MatchAccepted,
    MatchCancelled,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    PlacementCancelled,
    PlacementConfirmed,
    RoundCompleted,
)
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
            MatchCancelled,
            PlacementCancelled,
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
        routers=ROUTERS,
    )
    app.state.store = store
    return app
