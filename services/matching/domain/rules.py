"""From the read model to a market: eligibility (with reasons), preferences and fit score.

Fit score, used to order a position's applicants when its company has not ranked them
(0..100, higher is better):
- 50 x share of the position's required skills the student has (1.0 when none are required),
- 20 x JLPT margin over the minimum (0 at the minimum, 1 at N1 above an N5 minimum; a
       position without a minimum counts the student's level from "none"),
- 10 x English margin, likewise on the CEFR scale,
- 10 if the department fits the sector (e.g. electrical engineering for semiconductors),
- 10 x how high the student ranked this position (1 for their first choice).
Ties are broken by a seeded hash of (seed, position, student): deterministic for a seed,
favouring nobody systematically.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from services.matching.domain.market import Market
from shared.events.vocabulary import EnglishLevel, JLPTLevel

SECTOR_DEPARTMENT_WORDS = {
    "semiconductor": ("electr", "material", "physics", "chemi", "semiconductor", "optoelectr"),
    "automotive": ("mechanic", "vehicle", "automotive", "electr", "industrial", "manufactur"),
    "robotics_ai": (
        "computer",
        "information",
        "software",
        "robot",
        "automation",
        "electr",
        "mechatron",
        "data",
        "artificial",
    ),
    "other": (),
}


class Reason(StrEnum):
    POSITION_UNAVAILABLE = "position_unavailable"
    NO_CONSENT = "no_consent"
    JLPT_BELOW_MINIMUM = "jlpt_below_minimum"
    ENGLISH_BELOW_MINIMUM = "english_below_minimum"
    AVAILABILITY_GAP = "availability_does_not_cover_dates"
    PREVIOUSLY_DECLINED = "previously_declined"
    PREVIOUSLY_EXPIRED = "previously_expired"
    PREVIOUSLY_CANCELLED = "previously_cancelled"
    PLACEMENT_CANCELLED = "placement_cancelled"
    NOT_RANKED_BY_COMPANY = "not_ranked_by_company"


@dataclass(frozen=True)
class PositionInput:
    id: str
    company_id: str
    sector: str
    seats: int  # seats still free in this round
    required_skills: tuple[str, ...] = ()
    min_jlpt: str | None = None
    min_english: str | None = None
    paid: bool = True
    start_date: date = date(2026, 7, 1)
    end_date: date = date(2026, 8, 31)
    ranking: tuple[str, ...] | None = None  # the company's ranking of students, best first


@dataclass(frozen=True)
class StudentInput:
    id: str
    application_id: str
    ranked_position_ids: tuple[str, ...]
    department: str = ""
    jlpt_level: str | None = None
    english_level: str | None = None
    skills: tuple[str, ...] = ()
    available_from: date = date(2026, 1, 1)
    available_to: date = date(2026, 12, 31)
    consent_to_data_use: bool = True


@dataclass(frozen=True)
class RoundInput:
    cohort_id: str
    seed: int
    students: tuple[StudentInput, ...]
    positions: tuple[PositionInput, ...]
    # (student id, position id) -> reason, for pairs earlier rounds rule out.
    excluded_pairs: dict[tuple[str, str], Reason] = field(default_factory=dict)

    def canonical(self) -> dict[str, Any]:
        """Order-independent, JSON-ready form: what the snapshot hash is computed over."""
        return {
            "cohort_id": self.cohort_id,
            "students": [_plain(asdict(s)) for s in sorted(self.students, key=lambda s: s.id)],
            "positions": [_plain(asdict(p)) for p in sorted(self.positions, key=lambda p: p.id)],
            "excluded_pairs": sorted([s, p, r.value] for (s, p), r in self.excluded_pairs.items()),
        }

    def snapshot_hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()

    @classmethod
    def from_canonical(cls, data: dict[str, Any], seed: int) -> RoundInput:
        def position(d: dict[str, Any]) -> PositionInput:
            return PositionInput(
                **{
                    **d,
                    "required_skills": tuple(d["required_skills"]),
                    "start_date": date.fromisoformat(d["start_date"]),
                    "end_date": date.fromisoformat(d["end_date"]),
                    "ranking": tuple(d["ranking"]) if d["ranking"] is not None else None,
                }
            )

        def student(d: dict[str, Any]) -> StudentInput:
            return StudentInput(
                **{
                    **d,
                    "ranked_position_ids": tuple(d["ranked_position_ids"]),
                    "skills": tuple(d["skills"]),
                    "available_from": date.fromisoformat(d["available_from"]),
                    "available_to": date.fromisoformat(d["available_to"]),
                }
            )

        return cls(
            cohort_id=data["cohort_id"],
            seed=seed,
            students=tuple(student(s) for s in data["students"]),
            positions=tuple(position(p) for p in data["positions"]),
            excluded_pairs={(s, p): Reason(r) for s, p, r in data["excluded_pairs"]},
        )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class Exclusion:
    student_id: str
    position_id: str
    reason: Reason
    detail: str


def consent_withdrawn_exclusions(
    withdrawn: list[tuple[str, tuple[str, ...]]],
) -> list[Exclusion]:
    """Students who withdrew consent are not in the market (their applications were
    withdrawn), yet the coordinator must see why they are missing: one exclusion per pair of
    the withdrawn application. `withdrawn` holds (student id, ranked position ids)."""
    return [
        Exclusion(
            student_id,
            position_id,
            Reason.NO_CONSENT,
            "the student withdrew consent to data use; their application was withdrawn",
        )
        for student_id, ranked in sorted(withdrawn)
        for position_id in ranked
    ]


def _jlpt(level: str | None) -> int:
    return JLPTLevel(level).strength if level else 0


def _english(level: str | None) -> int:
    return EnglishLevel(level).strength if level else 0


def exclusion_reason(
    student: StudentInput, position: PositionInput | None, excluded: Reason | None
) -> tuple[Reason, str] | None:
    """Why this student may not be proposed to this position (None: eligible)."""
    if position is None or position.seats < 1:
        return Reason.POSITION_UNAVAILABLE, "the position is closed, unknown or has no free seat"
    if excluded is not None:
        return excluded, "ruled out by an earlier round's answer"
    if not student.consent_to_data_use:
        return Reason.NO_CONSENT, "the student has not consented to data use for matching"
    if position.min_jlpt and _jlpt(student.jlpt_level) < _jlpt(position.min_jlpt):
        return (
            Reason.JLPT_BELOW_MINIMUM,
            f"JLPT {student.jlpt_level or 'none'} below the required {position.min_jlpt}",
        )
    if position.min_english and _english(student.english_level) < _english(position.min_english):
        return (
            Reason.ENGLISH_BELOW_MINIMUM,
            f"English {student.english_level or 'none'} below the required {position.min_english}",
        )
    if student.available_from > position.start_date or student.available_to < position.end_date:
        return (
            Reason.AVAILABILITY_GAP,
            f"available {student.available_from}..{student.available_to}, "
            f"internship {position.start_date}..{position.end_date}",
        )
    if position.ranking is not None and student.id not in position.ranking:
        return (
            Reason.NOT_RANKED_BY_COMPANY,
            "the company ranked its applicants and left this one out",
        )
    return None


def fit_score(student: StudentInput, position: PositionInput, student_rank: int) -> float:
    # Skills are stored as people typed them ("OpenCV"); they match whatever the case.
    required = {s.casefold() for s in position.required_skills}
    had = {s.casefold() for s in student.skills}
    skills = len(required & had) / len(required) if required else 1.0
    jlpt = max(0, _jlpt(student.jlpt_level) - _jlpt(position.min_jlpt)) / 5
    english = max(0, _english(student.english_level) - _english(position.min_english)) / 6
    department = student.department.lower()
    fits = any(w in department for w in SECTOR_DEPARTMENT_WORDS.get(position.sector, ()))
    n = len(student.ranked_position_ids)
    interest = 1.0 if n <= 1 else 1 - (student_rank - 1) / (n - 1)
    return round(50 * skills + 20 * jlpt + 10 * english + 10 * fits + 10 * interest, 6)


def tie_break(seed: int, position_id: str, student_id: str) -> str:
    return hashlib.sha256(f"{seed}:{position_id}:{student_id}".encode()).hexdigest()


@dataclass
class BuiltMarket:
    student_ids: list[str]
    position_ids: list[str]
    capacity: list[int]
    student_prefs: list[list[int]]
    position_prefs: list[list[int]]
    exclusions: list[Exclusion]
    scores: dict[tuple[str, str], float]

    def arrays(self) -> Market:
        return Market.from_lists(self.capacity, self.student_prefs, self.position_prefs)


def build_market(round_input: RoundInput) -> BuiltMarket:
    students = sorted(round_input.students, key=lambda s: s.id)
    positions = sorted(round_input.positions, key=lambda p: p.id)
    by_id = {p.id: p for p in positions}
    position_index = {p.id: i for i, p in enumerate(positions)}
    exclusions: list[Exclusion] = []
    student_prefs: list[list[int]] = []
    applicants: list[list[tuple[int, int]]] = [[] for _ in positions]  # (student idx, rank)
    for s_index, student in enumerate(students):
        prefs = []
        for rank, position_id in enumerate(student.ranked_position_ids, start=1):
            position = by_id.get(position_id)
            why = exclusion_reason(
                student, position, round_input.excluded_pairs.get((student.id, position_id))
            )
            if why is not None:
                exclusions.append(Exclusion(student.id, position_id, why[0], why[1]))
                continue
            p_index = position_index[position_id]
            prefs.append(p_index)
            applicants[p_index].append((s_index, rank))
        student_prefs.append(prefs)

    scores: dict[tuple[str, str], float] = {}
    position_prefs: list[list[int]] = []
    for p_index, position in enumerate(positions):
        if position.ranking is not None:
            order = {sid: r for r, sid in enumerate(position.ranking)}
            ranked = sorted(applicants[p_index], key=lambda a: order[students[a[0]].id])
        else:
            for s_index, rank in applicants[p_index]:
                scores[(students[s_index].id, position.id)] = fit_score(
                    students[s_index], position, rank
                )
            ranked = sorted(
                applicants[p_index],
                key=lambda a: (
                    -scores[(students[a[0]].id, position.id)],
                    tie_break(round_input.seed, position.id, students[a[0]].id),
                ),
            )
        position_prefs.append([s_index for s_index, _ in ranked])

    return BuiltMarket(
        student_ids=[s.id for s in students],
        position_ids=[p.id for p in positions],
        capacity=[max(0, p.seats) for p in positions],
        student_prefs=student_prefs,
        position_prefs=position_prefs,
        exclusions=exclusions,
        scores=scores,
    )
