"""The KPIs (shared.kpis), from the matching service's documents and from the public events:
the same records, the same figures, whatever order the events come in."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain.lifecycle import PlacementStatus, ProposalStatus
from services.matching.domain.rules import Reason, consent_withdrawn_exclusions
from services.matching.domain.statistics import cohort_records
from shared.events import (
    ApplicationSubmitted,
    ApplicationWithdrawn,
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
    make_event,
)
from shared.events.catalog import EventData
from shared.kpis import (
    KPI_DEFINITIONS,
    CohortRecord,
    CohortRecords,
    PlacementState,
    ProposalState,
    cohort_kpis,
    percentile,
    records_from_events,
    trend,
)

T0 = datetime(2027, 3, 1, tzinfo=UTC)
COHORT = {"_id": "c", "state": "matching", "application_opens": T0 - timedelta(days=30)}
POSITIONS = [
    {
        "_id": "p-semi",
        "company_id": "co-1",
        "sector": "semiconductor",
        "track": "development_design_programming",
        "capacity": 2,
    },
    {
        "_id": "p-auto",
        "company_id": "co-2",
        "sector": "automotive",
        "track": "production_line",
        "capacity": 2,
    },
    # A closing whose publication has not arrived yet: a stub, left out until it does.
    {"_id": "p-late", "company_id": "co-3", "state": "closed"},
]


def application(aid: str, student: str, ranked: list[str], **over: object) -> dict[str, object]:
    return {
        "_id": aid,
        "student_id": student,
        "ranked_position_ids": ranked,
        "state": "active",
        "submitted_at": T0.isoformat(),
        **over,
    }


def proposal(
    pid: str, status: str, aid: str, student: str, position: str = "p-semi", **over: Any
) -> dict[str, object]:
    sector = "semiconductor" if position == "p-semi" else "automotive"
    return {
        "_id": pid,
        "round_id": "r1",
        "status": status,
        "application_id": aid,
        "student_id": student,
        "position_id": position,
        "sector": sector,
        "proposed_at": T0 + timedelta(hours=10),
        "student_answer": None,
        "company_answer": None,
        **over,
    }


def documents() -> dict[str, Any]:
    applications = [
        application("a1", "s1", ["p-semi", "p-auto"]),
        application("a2", "s2", ["p-auto"]),
        application("a3", "s3", ["p-semi"]),
        application("a4", "s4", ["p-semi"], state="withdrawn", withdrawn_reason="withdrawn"),
        # An edit: the replaced version is not a second application.
        application("a0", "s1", ["p-semi"], state="withdrawn", withdrawn_reason="replaced"),
    ]
    proposals = [
        proposal("x1", "confirmed", "a1", "s1"),
        proposal("x2", "declined", "a2", "s2", "p-auto", company_answer="declined"),
        proposal("x3", "expired", "a3", "s3"),
        proposal("x4", "cancelled", "a4", "s4"),  # nobody could answer: not in the rate
        proposal("x5", "confirmed", "a2", "s2", "p-auto", proposed_at=T0 + timedelta(hours=40)),
    ]
    placements = [
        {
            "_id": "pl1",
            "proposal_id": "x1",
            "student_id": "s1",
            "position_id": "p-semi",
            "sector": "semiconductor",
            "application_id": "a1",
            "confirmed_at": T0 + timedelta(hours=30),
            "status": "completed",
            "outcome": "hired_by_host",
        },
        {
            "_id": "pl2",
            "proposal_id": "x5",
            "student_id": "s2",
            "position_id": "p-auto",
            "sector": "automotive",
            "application_id": "a2",
            "confirmed_at": T0 + timedelta(hours=50),
            "status": "cancelled",
        },
    ]
    rounds = [
        {"_id": "r1", "number": 1, "completed_at": T0 + timedelta(hours=10)},
        {"_id": "r2", "number": 2, "completed_at": T0 + timedelta(hours=40)},
    ]
    return {
        "positions": POSITIONS,
        "applications": applications,
        "proposals": proposals,
        "placements": placements,
        "rounds": rounds,
    }


def kpis_of(docs: dict[str, Any]) -> dict[str, Any]:
    return cohort_kpis(cohort_records(COHORT, **docs))


def test_rates_times_and_outcomes() -> None:
    stats = kpis_of(documents())
    # 2 accepted by both (one placement later cancelled still counts) / (2 + 1 + 1).
    assert stats["acceptance_rate"] == 0.5
    assert stats["acceptance_rate_basis"] == {"accepted": 2, "answered_or_expired": 4}
    assert stats["decline_rate"] == 0.25 and stats["expiry_rate"] == 0.25
    assert stats["declines_by_party"] == {"company": 1}
    assert stats["applicants"] == 4 and stats["applications"] == 4
    assert stats["seats"] == 4 and stats["applicants_per_seat"] == 1.0
    assert stats["placements"] == 1 and stats["placements_cancelled"] == 1
    assert stats["match_rate"] == 0.25  # one standing placement / four applicants
    assert stats["hours_to_placement"] == {"median": 30.0, "p90": 30.0, "count": 1}
    # First proposal per application: a1 10 h, a2 10 h (x2; x5 came later), a3 10, a4 10.
    assert stats["hours_to_proposal"] == {"median": 10.0, "p90": 10.0, "count": 4}
    assert stats["students_proposed"] == 4
    assert stats["seats_left_empty"] == 3  # p-semi 2 - 1, p-auto 2 - 0 (cancelled)
    assert stats["completed"] == 1 and stats["completion_rate"] == 1.0
    assert stats["outcomes"] == {"hired_by_host": 1}
    assert stats["local_employment_rate"] == 1.0 and stats["japan_employment_rate"] == 1.0
    assert stats["applications_by_sector"] == {
        "automotive": {"applications": 2, "first_choice": 1},
        "semiconductor": {"applications": 3, "first_choice": 3},
    }
    assert stats["applications_by_track"]["production_line"] == {
        "applications": 2,
        "first_choice": 1,
    }
    assert stats["seats_by_sector"] == {"automotive": 2, "semiconductor": 2}
    assert stats["placements_by_sector"] == {"semiconductor": 1}
    assert stats["active_applications"] == 3
    assert stats["proposals"] == {"confirmed": 2, "declined": 1, "expired": 1, "cancelled": 1}
    assert stats["rounds"] == 2


def test_an_empty_cohort_has_no_rates() -> None:
    stats = cohort_kpis(CohortRecords(cohort=CohortRecord("c")))
    for rate in ("acceptance_rate", "match_rate", "completion_rate", "local_employment_rate"):
        assert stats[rate] is None
    assert stats["hours_to_placement"] == {"median": None, "p90": None, "count": 0}
    assert stats["applicants_per_seat"] is None


def test_every_kpi_has_one_definition_and_the_readme_states_each() -> None:
    stats = cohort_kpis(CohortRecords(cohort=CohortRecord("c")))
    figures = set(stats) - {"cohort_id", "acceptance_rate_basis"}
    assert figures == set(KPI_DEFINITIONS)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## KPIs", 1)[1].split("\n## ", 1)[0]
    for name in KPI_DEFINITIONS:
        assert f"| `{name}` |" in section, f"README's KPI table lacks {name}"


def test_percentiles_interpolate_between_the_nearest_values() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0], 90) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(1, 11))), 90) == 9.1


def test_the_states_the_kpis_know_are_matchings_states() -> None:
    assert {s.value for s in ProposalState} == {s.value for s in ProposalStatus}
    assert {s.value for s in PlacementState} == {s.value for s in PlacementStatus}


def test_students_who_withdrew_consent_are_listed_with_the_reason() -> None:
    exclusions = consent_withdrawn_exclusions([("s2", ("p1", "p2")), ("s1", ("p3",))])
    assert [(e.student_id, e.position_id, e.reason) for e in exclusions] == [
        ("s1", "p3", Reason.NO_CONSENT),
        ("s2", "p1", Reason.NO_CONSENT),
        ("s2", "p2", Reason.NO_CONSENT),
    ]
    assert "withdrew consent" in exclusions[0].detail


# The same cohort told by its events ------------------------------------------------------


def _ids(pid: str, aid: str, student: str, position: str) -> dict[str, str]:
    return {
        "proposal_id": pid,
        "round_id": "r1",
        "cohort_id": "c",
        "student_id": student,
        "position_id": position,
        "company_id": "co-1" if position == "p-semi" else "co-2",
        "application_id": aid,
    }


def _sector(position: str) -> str:
    return "semiconductor" if position == "p-semi" else "automotive"


def events() -> list[EventData]:
    """What the stream says about the cohort of `documents()`."""
    out: list[EventData] = [
        CohortStateChanged(
            cohort_id="c",
            to_state="open",
            application_opens=T0 - timedelta(days=30),
            application_closes=T0,
            changed_at=T0 - timedelta(days=30),
        )
    ]
    for p in POSITIONS[:2]:
        out.append(
            PositionPublished(
                position_id=p["_id"],
                cohort_id="c",
                company_id=p["company_id"],
                company_name_ja="株式会社",
                company_name_en="Co.",
                sector=p["sector"],
                track=p["track"],
                title="t",
                capacity=p["capacity"],
                paid=True,
                start_date=date(2027, 7, 1),
                end_date=date(2027, 8, 31),
                location="Kitakyushu",
            )
        )
    for aid, student, ranked in (
        ("a0", "s1", ["p-semi"]),
        ("a1", "s1", ["p-semi", "p-auto"]),
        ("a2", "s2", ["p-auto"]),
        ("a3", "s3", ["p-semi"]),
        ("a4", "s4", ["p-semi"]),
    ):
        out.append(
            ApplicationSubmitted(
                application_id=aid,
                cohort_id="c",
                student_id=student,
                ranked_position_ids=ranked,
                department="EE",
                degree_program="master",
                graduation_year=2028,
                available_from=date(2027, 6, 1),
                available_to=date(2027, 9, 30),
                consent_to_data_use=True,
                # Microseconds an event carries and a store drops: compared to the millisecond.
                submitted_at=T0 + timedelta(microseconds=400),
            )
        )
    for aid, student, reason in (("a0", "s1", "replaced"), ("a4", "s4", "withdrawn")):
        out.append(
            ApplicationWithdrawn(
                application_id=aid,
                cohort_id="c",
                student_id=student,
                reason=reason,
                withdrawn_at=T0 + timedelta(hours=1),
            )
        )
    for pid, aid, student, position, hours in (
        ("x1", "a1", "s1", "p-semi", 10),
        ("x2", "a2", "s2", "p-auto", 10),
        ("x3", "a3", "s3", "p-semi", 10),
        ("x4", "a4", "s4", "p-semi", 10),
        ("x5", "a2", "s2", "p-auto", 40),
    ):
        out.append(
            MatchProposed(
                **_ids(pid, aid, student, position),
                sector=_sector(position),
                student_rank=1,
                residence_status="designated_activities",
                respond_by=T0 + timedelta(days=20),
                proposed_at=T0 + timedelta(hours=hours),
            )
        )
    x1, x2 = _ids("x1", "a1", "s1", "p-semi"), _ids("x2", "a2", "s2", "p-auto")
    x3 = _ids("x3", "a3", "s3", "p-semi")
    x4, x5 = _ids("x4", "a4", "s4", "p-semi"), _ids("x5", "a2", "s2", "p-auto")
    at = T0 + timedelta(hours=20)
    out += [
        MatchAccepted(**x1, party="student", accepted_at=at),
        MatchAccepted(**x1, party="company", accepted_at=at, completes_placement=True),
        MatchDeclined(**x2, party="company", declined_at=at),
        MatchExpired(**x3, respond_by=at, expired_at=at),
        MatchCancelled(
            **x4, sector="semiconductor", reason="application_withdrawn", cancelled_at=at
        ),
        MatchAccepted(**x5, party="student", accepted_at=at),
    ]
    confirmed = {
        "start_date": date(2027, 7, 1),
        "end_date": date(2027, 8, 31),
        "residence_status": "designated_activities",
    }
    out += [
        PlacementConfirmed(
            placement_id="pl1",
            **x1,
            sector="semiconductor",
            confirmed_at=T0 + timedelta(hours=30, microseconds=999),
            **confirmed,
        ),
        PlacementConfirmed(
            placement_id="pl2",
            **x5,
            sector="automotive",
            confirmed_at=T0 + timedelta(hours=50),
            **confirmed,
        ),
        PlacementCancelled(
            placement_id="pl2",
            **x5,
            sector="automotive",
            reason="company_withdrew",
            cancelled_at=T0 + timedelta(hours=60),
        ),
        InternshipCompleted(
            placement_id="pl1",
            **x1,
            sector="semiconductor",
            completed_on=date(2027, 8, 31),
            recorded_at=T0 + timedelta(days=200),
        ),
        OutcomeRecorded(
            placement_id="pl1",
            **x1,
            sector="semiconductor",
            outcome="returned_to_studies",
            recorded_at=T0 + timedelta(days=201),
        ),
        OutcomeRecorded(
            placement_id="pl1",
            **x1,
            sector="semiconductor",
            outcome="hired_by_host",
            recorded_at=T0 + timedelta(days=400),
        ),
    ]
    for rid, number, hours in (("r1", 1, 10), ("r2", 2, 40)):
        out.append(
            RoundCompleted(
                round_id=rid,
                cohort_id="c",
                round_number=number,
                algorithm_version="v",
                seed=1,
                input_hash="h",
                students=4,
                seats=4,
                proposed=4,
                unmatched=0,
                excluded_pairs=0,
                stable=True,
                completed_at=T0 + timedelta(hours=hours),
            )
        )
    return out


def test_the_event_stream_gives_the_figures_the_documents_give() -> None:
    from_events = records_from_events(events())["c"]
    assert cohort_kpis(from_events) == kpis_of(documents())


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=3))
def test_the_figures_do_not_depend_on_the_order_or_repeats_of_events(
    rnd: random.Random, copies: int
) -> None:
    stream = [make_event(e, source="/test", subject=e.key) for e in events()] * copies
    rnd.shuffle(stream)
    assert cohort_kpis(records_from_events(stream)["c"]) == kpis_of(documents())


def test_the_trend_lists_cohorts_oldest_first() -> None:
    older = CohortRecords(cohort=CohortRecord("2026-summer", T0 - timedelta(days=365)))
    newer = records_from_events(events())["c"]
    rows = trend([newer, older])
    assert [r["cohort_id"] for r in rows] == ["2026-summer", "c"]
    assert rows[1]["match_rate"] == 0.25 and rows[1]["hours_to_placement_median"] == 30.0
