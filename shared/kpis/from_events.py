"""The KPI records from the public event stream alone (what a downstream subscriber has).

Events of different topics arrive in any order and may repeat, so every fact merges: a
proposal's later state never gives way to an earlier one, a withdrawal that overtook its
submission is kept, the newest outcome stands. Feed events in the order they were published
where you can (per aggregate, Kafka keeps it); repeats change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.events import (
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CloudEvent,
    CohortStateChanged,
    InternshipCompleted,
    MatchAccepted,
    MatchCancelled,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    OutcomeRecorded,
    PlacementCancelled,
    PlacementConfirmed,
    PositionPublished,
    RoundCompleted,
)
from shared.kpis.records import (
    ApplicationRecord,
    CohortRecord,
    CohortRecords,
    PlacementRecord,
    PlacementState,
    PositionRecord,
    ProposalRecord,
    ProposalState,
    RoundRecord,
    to_millis,
)

# A proposal's states in the order they can follow each other; the ending ones are final.
_STEP = {
    ProposalState.PROPOSED: 0,
    ProposalState.ACCEPTED: 1,
    ProposalState.CONFIRMED: 2,
    ProposalState.DECLINED: 2,
    ProposalState.EXPIRED: 2,
    ProposalState.CANCELLED: 2,
}


@dataclass
class _Proposal:
    state: ProposalState = ProposalState.PROPOSED
    declined_by: str | None = None
    proposed: MatchProposed | None = None


@dataclass
class _Placement:
    confirmed: PlacementConfirmed | None = None
    cancelled: bool = False
    completed: bool = False
    outcome: tuple[datetime, str] | None = None


@dataclass
class _Application:
    submitted: ApplicationSubmitted | None = None
    withdrawn_reason: str | None = None


@dataclass
class _Cohort:
    opens: datetime | None = None
    state: str | None = None
    changed_at: datetime | None = None
    positions: dict[str, PositionRecord] = field(default_factory=dict)
    applications: dict[str, _Application] = field(default_factory=dict)
    proposals: dict[str, _Proposal] = field(default_factory=dict)
    placements: dict[str, _Placement] = field(default_factory=dict)
    rounds: dict[str, RoundRecord] = field(default_factory=dict)


class _Fold:
    def __init__(self) -> None:
        self.cohorts: dict[str, _Cohort] = {}

    def cohort(self, cohort_id: str) -> _Cohort:
        return self.cohorts.setdefault(cohort_id, _Cohort())

    def proposal(self, data: Any) -> _Proposal:
        return self.cohort(data.cohort_id).proposals.setdefault(data.proposal_id, _Proposal())

    def placement(self, data: Any) -> _Placement:
        return self.cohort(data.cohort_id).placements.setdefault(data.placement_id, _Placement())

    def step(self, data: Any, state: ProposalState) -> _Proposal:
        proposal = self.proposal(data)
        if _STEP[state] > _STEP[proposal.state]:
            proposal.state = state
        return proposal

    def apply(self, data: Any) -> None:
        if isinstance(data, CohortStateChanged):
            cohort = self.cohort(data.cohort_id)
            if cohort.changed_at is None or data.changed_at >= cohort.changed_at:
                cohort.opens = to_millis(data.application_opens)
                cohort.state = data.to_state.value
                cohort.changed_at = data.changed_at
        elif isinstance(data, PositionPublished):
            # A position edited while its cohort is open is published again: the latest counts.
            self.cohort(data.cohort_id).positions[data.position_id] = PositionRecord(
                position_id=data.position_id,
                cohort_id=data.cohort_id,
                company_id=data.company_id,
                sector=data.sector.value,
                track=data.track.value,
                capacity=data.capacity,
            )
        elif isinstance(data, ApplicationSubmitted):
            apps = self.cohort(data.cohort_id).applications
            apps.setdefault(data.application_id, _Application()).submitted = data
        elif isinstance(data, ApplicationWithdrawn):
            apps = self.cohort(data.cohort_id).applications
            apps.setdefault(data.application_id, _Application()).withdrawn_reason = data.reason
        elif isinstance(data, MatchProposed):
            self.proposal(data).proposed = data
        elif isinstance(data, MatchAccepted):
            self.step(data, ProposalState.ACCEPTED)
        elif isinstance(data, MatchDeclined):
            self.step(data, ProposalState.DECLINED).declined_by = data.party.value
        elif isinstance(data, MatchExpired):
            self.step(data, ProposalState.EXPIRED)
        elif isinstance(data, MatchCancelled):
            self.step(data, ProposalState.CANCELLED)
        elif isinstance(data, PlacementConfirmed):
            self.step(data, ProposalState.CONFIRMED)
            self.placement(data).confirmed = data
        elif isinstance(data, PlacementCancelled):
            self.placement(data).cancelled = True
        elif isinstance(data, InternshipCompleted):
            self.placement(data).completed = True
        elif isinstance(data, OutcomeRecorded):
            placement = self.placement(data)
            placement.completed = True  # an outcome is recorded only after completion
            if placement.outcome is None or data.recorded_at >= placement.outcome[0]:
                placement.outcome = (data.recorded_at, data.outcome.value)
        elif isinstance(data, RoundCompleted):
            self.cohort(data.cohort_id).rounds[data.round_id] = RoundRecord(
                round_id=data.round_id,
                cohort_id=data.cohort_id,
                number=data.round_number,
                completed_at=to_millis(data.completed_at),
            )
        # Other types (rankings, profiles, company decisions, closings) change no KPI.

    def records(self) -> dict[str, CohortRecords]:
        out = {}
        for cohort_id, c in sorted(self.cohorts.items()):
            records = CohortRecords(
                cohort=CohortRecord(cohort_id, c.opens, c.state),
                positions=sorted(c.positions.values(), key=lambda p: p.position_id),
                rounds=sorted(c.rounds.values(), key=lambda r: r.number),
            )
            for application_id, a in sorted(c.applications.items()):
                if a.submitted is not None:  # a withdrawal seen without its submission: wait
                    records.applications.append(
                        ApplicationRecord(
                            application_id=application_id,
                            cohort_id=cohort_id,
                            student_id=a.submitted.student_id,
                            ranked_position_ids=tuple(a.submitted.ranked_position_ids),
                            submitted_at=to_millis(a.submitted.submitted_at),
                            withdrawn_reason=a.withdrawn_reason,
                        )
                    )
            for proposal_id, p in sorted(c.proposals.items()):
                if p.proposed is not None:
                    m = p.proposed
                    records.proposals.append(
                        ProposalRecord(
                            proposal_id=proposal_id,
                            cohort_id=cohort_id,
                            round_id=m.round_id,
                            student_id=m.student_id,
                            position_id=m.position_id,
                            sector=m.sector.value,
                            application_id=m.application_id,
                            proposed_at=to_millis(m.proposed_at),
                            state=p.state,
                            declined_by=p.declined_by,
                        )
                    )
            for placement_id, pl in sorted(c.placements.items()):
                if pl.confirmed is not None:
                    records.placements.append(_placement_record(placement_id, pl, pl.confirmed))
            out[cohort_id] = records
        return out


def _placement_record(
    placement_id: str, pl: _Placement, confirmed: PlacementConfirmed
) -> PlacementRecord:
    if pl.cancelled:
        state = PlacementState.CANCELLED
    elif pl.completed:
        state = PlacementState.COMPLETED
    else:
        state = PlacementState.CONFIRMED
    record = PlacementRecord(
        placement_id=placement_id,
        cohort_id=confirmed.cohort_id,
        proposal_id=confirmed.proposal_id,
        student_id=confirmed.student_id,
        position_id=confirmed.position_id,
        sector=confirmed.sector.value,
        application_id=confirmed.application_id,
        confirmed_at=to_millis(confirmed.confirmed_at),
        state=state,
    )
    if state is PlacementState.COMPLETED and pl.outcome is not None:
        record = replace(record, outcome=pl.outcome[1])
    return record


def records_from_events(events: Iterable[CloudEvent[Any] | Any]) -> dict[str, CohortRecords]:
    """Cohort id -> its KPI records, from parsed events (CloudEvents or their payloads)."""
    fold = _Fold()
    for event in events:
        fold.apply(event.data if isinstance(event, CloudEvent) else event)
    return fold.records()
