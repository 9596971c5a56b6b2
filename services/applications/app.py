"""Wiring of the applications service."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import Field

from services.applications import handlers
from services.applications.api import ROUTERS
from services.applications.store import ApplicationsStore
from shared.events import (
    ApplicantsRanked,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CohortStateChanged,
    CompanyStatusChanged,
    PositionClosed,
    PositionPublished,
    StudentProfileUpdated,
)
from shared.runtime import ServiceRuntime, create_http_app
from shared.settings import CommonSettings

NAME = "applications"


class ApplicationsSettings(CommonSettings):
    http_port: int = Field(default=8001, alias="APPLICATIONS_HTTP_PORT")
    database: str = Field(default="applications", alias="APPLICATIONS_DATABASE")


def create_app(settings: ApplicationsSettings | None = None) -> FastAPI:
    settings = settings or ApplicationsSettings()
    runtime = ServiceRuntime(
        name=NAME,
        settings=settings,
        database=settings.database,
        publishes=[
            PositionPublished,
            PositionClosed,
            ApplicationSubmitted,
            ApplicationWithdrawn,
            ApplicantsRanked,
            CohortStateChanged,
            CompanyStatusChanged,
            StudentProfileUpdated,
        ],
        publishes_contacts=True,
    )
    store = ApplicationsStore(runtime.db, runtime.outbox)
    runtime.on_start(store.ensure_indexes)
    handlers.register(runtime, store)
    app = create_http_app(
        runtime,
        title="Applications service",
        description=(
            "Cohorts, host companies, positions, students, applications and rankings of the "
            "Kitakyushu x Taipei Tech international internship program."
        ),
        routers=ROUTERS,
    )
    app.state.store = store
    return app
