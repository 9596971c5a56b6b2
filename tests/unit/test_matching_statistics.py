"""A cohort's figures, computed from documents (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.matching.domain.rules import Reason, consent_withdrawn_exclusions
from services.matching.domain.statistics import cohort_statistics

T0 = datetime(2027, 3, 1, tzinfo=UTC)
POSITIONS = {
    "p-semi": {"sector": "semiconductor", "track": "development_design_programming"},
    "p-auto": {"sector": "automotive", "track": "production_line"},
}


def application(aid: str, student: str, ranked: list[str], **over: object) -> dict[str, object]:
    return {
        "_id": aid,
        "student_id": student,
        "ranked_position_ids": ranked,
        "state": "active",
        "submitted_at": T0.isoformat(),
        **over,
    }


def proposal(pid: str, status: str, aid: str, sector: str = "semiconductor") -> dict[str, object]:
    return {"_id": pid, "status": status, "application_id": aid, "sector": sector}


def test_rates_and_times() -> None:
    applications = [
        application("a1", "s1", ["p-semi", "p-auto"]),
        application("a2", "s2", ["p-auto"]),
        application("a3", "s3", ["p-semi"]),
        application("a4", "s4", ["p-semi"], state="withdrawn", withdrawn_reason="withdrawn"),
        # An edit: the replaced version is not a second application.
        application("a0", "s1", ["p-semi"], state="withdrawn", withdrawn_reason="replaced"),
    ]
    proposals = [
        proposal("x1", "confirmed", "a1"),
        proposal("x2", "declined", "a2", "automotive"),
        proposal("x3", "expired", "a3"),
        proposal("x4", "cancelled", "a4"),  # nobody could answer: not in the rate
        proposal("x5", "confirmed", "a2", "automotive"),
    ]
    placements = [
        {
            "_id": "pl1",
            "proposal_id": "x1",
            "student_id": "s1",
            "confirmed_at": T0 + timedelta(hours=30),
        },
        {
            "_id": "pl2",
            "proposal_id": "x5",
            "student_id": "s2",
            "application_id": "a2",
            "confirmed_at": T0 + timedelta(hours=50),
            "status": "cancelled",
        },
    ]
    stats = cohort_statistics("c", 2, proposals, applications, POSITIONS, placements)
    # 2 accepted by both (one placement later cancelled still counts) / (2 + 1 + 1).
    assert stats["acceptance_rate"] == 0.5
    assert stats["acceptance_rate_basis"] == {"accepted": 2, "answered_or_expired": 4}
    assert stats["applicants"] == 4
    assert stats["placements"] == 1 and stats["placements_cancelled"] == 1
    assert stats["match_rate"] == 0.25  # one standing placement / four applicants
    assert stats["median_hours_to_placement"] == 30.0
    assert stats["applications_by_sector"] == {
        "automotive": {"applications": 2, "first_choice": 1},
        "semiconductor": {"applications": 3, "first_choice": 3},
    }
    assert stats["applications_by_track"]["production_line"] == {
        "applications": 2,
        "first_choice": 1,
    }
    assert stats["active_applications"] == 3
    assert stats["proposals"]["cancelled"] == 1


def test_an_empty_cohort_has_no_rates() -> None:
    stats = cohort_statistics("c", 0, [], [], {}, [])
    assert stats["acceptance_rate"] is None and stats["match_rate"] is None
    assert stats["median_hours_to_placement"] is None


def test_students_who_withdrew_consent_are_listed_with_the_reason() -> None:
    exclusions = consent_withdrawn_exclusions([("s2", ("p1", "p2")), ("s1", ("p3",))])
    assert [(e.student_id, e.position_id, e.reason) for e in exclusions] == [
        ("s1", "p3", Reason.NO_CONSENT),
        ("s2", "p1", Reason.NO_CONSENT),
        ("s2", "p2", Reason.NO_CONSENT),
    ]
    assert "withdrew consent" in exclusions[0].detail
