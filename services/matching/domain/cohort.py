"""A cohort's residual market, from the documents of one read (pure).

The store reads a cohort's positions, applications (each with the profile copy of its
submission and, joined by student id, the student's latest profile update), proposals and
rankings once, through indexes by cohort; preview and round both build their input here:
free seats, students not yet holding a proposal or a placement, on their newest profile
facts, and the pairs earlier answers or cancellations ruled out.

A student's facts come from two sources, each written by one handler only (one writer per
document, so no two partitions of the consumer conflict on them): the application's copy
(`application-submitted`, keyed by application) and the profile (`student-profile-updated`,
keyed by student). The newer of the two stands; at the same instant the profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from services.matching.domain import lifecycle
from services.matching.domain.lifecycle import PlacementStatus, ProposalStatus
from services.matching.domain.rules import PositionInput, Reason, RoundInput, StudentInput

Doc = dict[str, Any]

# The profile facts matching decides on (application-submitted carries the copy at submission,
# student-profile-updated every later change).
PROFILE_FIELDS = (
    "department",
    "degree_program",
    "graduation_year",
    "jlpt_level",
    "english_level",
    "skills",
    "available_from",
    "available_to",
    "consent_to_data_use",
)

# What earlier answers or cancellations rule out for a pair in later rounds.
PAIR_EXCLUSIONS = {
    ProposalStatus.DECLINED: Reason.PREVIOUSLY_DECLINED,
    ProposalStatus.EXPIRED: Reason.PREVIOUSLY_EXPIRED,
    ProposalStatus.CANCELLED: Reason.PREVIOUSLY_CANCELLED,
}


@dataclass(frozen=True)
class CohortFacts:
    """What one read of a cohort returns."""

    cohort_id: str
    positions: list[Doc]  # open positions with a capacity
    applications: list[Doc]  # every application of the cohort, whatever its state
    profiles: dict[str, Doc]  # student id -> latest profile update (if any)
    proposals: list[Doc]
    rankings: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by position id


def as_time(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def current_facts(application: Doc, profile: Doc | None) -> Doc:
    """The student's facts for this application: its submission's copy, or the profile
    update when that is as new or newer."""
    if profile is not None and as_time(profile["as_of"]) >= as_time(application["submitted_at"]):
        return {**application, **{k: profile[k] for k in PROFILE_FIELDS if k in profile}}
    return application


def round_input(facts: CohortFacts, seed: int) -> RoundInput:
    """The residual market of the cohort (see the module docstring)."""
    holding = [p for p in facts.proposals if lifecycle.holds_seat(p)]
    taken: dict[str, int] = {}
    for p in holding:
        taken[p["position_id"]] = taken.get(p["position_id"], 0) + 1
    busy_students = {p["student_id"] for p in holding}
    excluded: dict[tuple[str, str], Reason] = {}
    for p in facts.proposals:
        status = ProposalStatus(p["status"])
        pair = (p["student_id"], p["position_id"])
        if status in PAIR_EXCLUSIONS:
            excluded[pair] = PAIR_EXCLUSIONS[status]
        elif p.get("placement_status") == PlacementStatus.CANCELLED:
            excluded[pair] = Reason.PLACEMENT_CANCELLED
    positions = [
        PositionInput(
            id=p["_id"],
            company_id=p["company_id"],
            sector=p["sector"],
            seats=p["capacity"] - taken.get(p["_id"], 0),
            required_skills=tuple(p.get("required_skills", [])),
            min_jlpt=p.get("min_jlpt"),
            min_english=p.get("min_english"),
            paid=p["paid"],
            start_date=date.fromisoformat(p["start_date"]),
            end_date=date.fromisoformat(p["end_date"]),
            ranking=facts.rankings.get(p["_id"]),
        )
        for p in facts.positions
    ]
    active = [
        a for a in facts.applications if a.get("state") == "active" and "ranked_position_ids" in a
    ]
    # One application per student: if an edit's two events crossed, the newer one counts.
    latest: dict[str, Doc] = {}
    for a in sorted(active, key=lambda a: as_time(a["submitted_at"])):
        latest[a["student_id"]] = a
    students = []
    for student_id, a in sorted(latest.items()):
        if student_id in busy_students:
            continue
        now = current_facts(a, facts.profiles.get(student_id))
        students.append(
            StudentInput(
                id=student_id,
                application_id=a["_id"],
                ranked_position_ids=tuple(a["ranked_position_ids"]),
                department=now.get("department", ""),
                jlpt_level=now.get("jlpt_level"),
                english_level=now.get("english_level"),
                skills=tuple(now.get("skills", [])),
                available_from=date.fromisoformat(now["available_from"]),
                available_to=date.fromisoformat(now["available_to"]),
                consent_to_data_use=now["consent_to_data_use"],
            )
        )
    return RoundInput(
        cohort_id=facts.cohort_id,
        seed=seed,
        students=tuple(students),
        positions=tuple(positions),
        excluded_pairs=excluded,
    )


def consent_withdrawn(facts: CohortFacts) -> list[tuple[str, tuple[str, ...]]]:
    """(student, ranked positions) of applications withdrawn with the student's consent,
    for students with no other active application in the cohort."""
    still_in = {a["student_id"] for a in facts.applications if a.get("state") == "active"}
    return [
        (a["student_id"], tuple(a["ranked_position_ids"]))
        for a in facts.applications
        if a.get("state") == "withdrawn"
        and a.get("withdrawn_reason") == "consent_withdrawn"
        and "ranked_position_ids" in a
        and a["student_id"] not in still_in
    ]
