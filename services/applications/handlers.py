"""Kafka subscribers of the applications service: what matching decided, folded into each
application's one truthful status, and rounds moving their cohort on to `matching`.

The service never reads matching's database; these events are its only source. They travel
on different topics and may arrive in any order or twice: each handler merges facts (never
steps back), so the state does not depend on the order, and the idempotent consumer drops
repeats.
"""

from __future__ import annotations

import logging
from typing import Any

from services.applications.lifecycle import ProposalProgress
from services.applications.store import ApplicationsStore
from shared.events import (
    CloudEvent,
    MatchAccepted,
    MatchCancelled,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    PlacementCancelled,
    PlacementConfirmed,
    RoundCompleted,
)
from shared.events.catalog import ApplicationRef, ApplicationsNotMatched, EventData
from shared.events.vocabulary import Party
from shared.mongo import Session
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

Doc = dict[str, Any]


def proposal_fact(data: Any) -> Doc:
    """The facts one of matching's events states about a proposal (see merge_proposal)."""
    fact: Doc = {
        "proposal_id": data.proposal_id,
        "position_id": data.position_id,
        "round_id": data.round_id,
    }
    if isinstance(data, MatchProposed):
        fact |= {
            "status": ProposalProgress.PROPOSED,
            "proposed_at": data.proposed_at,
            "respond_by": data.respond_by,
            "residence_status": data.residence_status.value,
            "seen_at": data.proposed_at,
        }
    elif isinstance(data, MatchAccepted):
        fact |= {
            "status": ProposalProgress.ACCEPTED,
            f"{data.party.value}_answer": "accepted",
            "respond_by": data.respond_by,
            "seen_at": data.accepted_at,
        }
    elif isinstance(data, MatchDeclined):
        fact |= {
            "status": ProposalProgress.DECLINED,
            f"{data.party.value}_answer": "declined",
            "declined_by": data.party.value,
            "seen_at": data.declined_at,
        }
    elif isinstance(data, MatchExpired):
        fact |= {"status": ProposalProgress.EXPIRED, "seen_at": data.expired_at}
    elif isinstance(data, MatchCancelled):
        fact |= {
            "status": ProposalProgress.CANCELLED,
            "reason": data.reason.value,
            "seen_at": data.cancelled_at,
        }
    elif isinstance(data, PlacementConfirmed):
        fact |= {
            "status": ProposalProgress.CONFIRMED,
            "placement_id": data.placement_id,
            "residence_status": data.residence_status.value,
            f"{Party.STUDENT.value}_answer": "accepted",
            f"{Party.COMPANY.value}_answer": "accepted",
            "seen_at": data.confirmed_at,
        }
    elif isinstance(data, PlacementCancelled):
        fact |= {
            "status": ProposalProgress.PLACEMENT_CANCELLED,
            "placement_id": data.placement_id,
            "reason": data.reason.value,
            "seen_at": data.cancelled_at,
        }
    else:  # pragma: no cover - registration below lists exactly the types above
        raise TypeError(f"not a proposal event: {type(data).__name__}")
    return fact


def register(runtime: ServiceRuntime, store: ApplicationsStore) -> None:
    async def proposal_event(event: CloudEvent[Any], session: Session) -> None:
        data = event.data
        application = await store.find_application_for(
            session, data.application_id, data.student_id, data.cohort_id
        )
        if application is None:
            # Erased (its documents are gone) or never ours: nothing to keep a status for.
            log.info(
                "proposal event for an unknown application",
                extra={"event_id": str(event.id), "proposal_id": data.proposal_id},
            )
            return
        await store.record_proposal_fact(session, application, proposal_fact(data))

    proposal_events: list[type[EventData]] = [
        MatchProposed,
        MatchAccepted,
        MatchDeclined,
        MatchExpired,
        MatchCancelled,
        PlacementConfirmed,
        PlacementCancelled,
    ]
    for model in proposal_events:
        runtime.consumes(model.event_name, proposal_event)

    async def round_completed(event: CloudEvent[Any], session: Session) -> None:
        data: RoundCompleted = event.data
        await store.round_completed(session, data.cohort_id, data.round_id)
        # Events from before applications-not-matched list the applications here.
        await not_matched(session, data.unmatched_applications, data.round_id, data.completed_at)

    async def applications_not_matched(event: CloudEvent[Any], session: Session) -> None:
        data: ApplicationsNotMatched = event.data
        await not_matched(session, data.applications, data.round_id, data.completed_at)

    async def not_matched(
        session: Session, refs: list[ApplicationRef], round_id: str, at: Any
    ) -> None:
        """Mark the applications a round left without a proposal (read in one query)."""
        if not refs:
            return
        applications = store.applications.find(
            {"_id": {"$in": [ref.application_id for ref in refs]}}, session=session
        )
        async for application in applications:
            await store.record_not_matched(session, application, round_id, at)

    runtime.consumes(RoundCompleted.event_name, round_completed)
    runtime.consumes(ApplicationsNotMatched.event_name, applications_not_matched)
