"""One match round, end to end and pure: input -> market -> matching -> certificate."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from services.matching.domain.certificate import Certificate, certify
from services.matching.domain.deferred_acceptance import ALGORITHM_VERSION, deferred_acceptance
from services.matching.domain.rules import Exclusion, RoundInput, build_market


@dataclass(frozen=True)
class ProposedPair:
    student_id: str
    position_id: str
    application_id: str
    student_rank: int  # where the student ranked this position (1 = first choice)
    fit_score: float | None  # None when the company ranked its applicants itself


@dataclass(frozen=True)
class RoundResult:
    input_hash: str
    algorithm_version: str
    seed: int
    pairs: tuple[ProposedPair, ...]
    unmatched_student_ids: tuple[str, ...]
    exclusions: tuple[Exclusion, ...]
    certificate: Certificate
    seats: int

    def by_sector(self, sector_of: dict[str, str], seats_of: dict[str, int]) -> list[dict]:
        proposed = Counter(sector_of[p.position_id] for p in self.pairs)
        seats: Counter[str] = Counter()
        for position_id, n in seats_of.items():
            seats[sector_of[position_id]] += n
        return [
            {"sector": sector, "proposed": proposed.get(sector, 0), "seats": seats[sector]}
            for sector in sorted(seats)
        ]


def run_round(round_input: RoundInput) -> RoundResult:
    built = build_market(round_input)
    market = built.arrays()
    assignment = deferred_acceptance(market)
    certificate = certify(market, assignment)
    students = {s.id: s for s in round_input.students}
    pairs = []
    unmatched = []
    for s_index, slot in enumerate(assignment.tolist()):
        student_id = built.student_ids[s_index]
        if slot < 0:
            unmatched.append(student_id)
            continue
        position_id = built.position_ids[int(market.pref_pos[slot])]
        student = students[student_id]
        pairs.append(
            ProposedPair(
                student_id=student_id,
                position_id=position_id,
                application_id=student.application_id,
                student_rank=student.ranked_position_ids.index(position_id) + 1,
                fit_score=built.scores.get((student_id, position_id)),
            )
        )
    return RoundResult(
        input_hash=round_input.snapshot_hash(),
        algorithm_version=ALGORITHM_VERSION,
        seed=round_input.seed,
        pairs=tuple(pairs),
        unmatched_student_ids=tuple(unmatched),
        exclusions=tuple(built.exclusions),
        certificate=certificate,
        seats=sum(built.capacity),
    )
