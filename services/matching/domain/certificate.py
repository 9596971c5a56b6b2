"""An independent check of a matching: capacities, acceptability, and blocking pairs.

It shares no code with the engine: it reads the market and the assignment and looks for
every acceptable pair (s, p) where s prefers p to their match and p has a free seat or
prefers s to someone it holds. A stable matching has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from services.matching.domain.market import IntArray, Market


@dataclass(frozen=True)
class Certificate:
    stable: bool
    capacity_respected: bool
    assignments_acceptable: bool
    blocking_pairs: list[tuple[int, int]] = field(default_factory=list)  # (student, position)

    @property
    def valid(self) -> bool:
        return self.stable and self.capacity_respected and self.assignments_acceptable


def certify(market: Market, assignment: IntArray, max_listed: int = 100) -> Certificate:
    ptr = market.pref_ptr
    n = market.n_students
    owner = market.slot_student
    matched = assignment >= 0

    # Every matched slot belongs to its student (so the pair is acceptable to both sides).
    acceptable = bool(
        np.all(assignment[matched] < len(market.pref_pos))
        and np.all(owner[assignment[matched]] == np.flatnonzero(matched))
    )

    fill = np.bincount(market.pref_pos[assignment[matched]], minlength=market.n_positions)
    capacity_ok = bool(np.all(fill <= market.capacity))

    # The worst rank each position holds (-1 when empty, so nobody is "worse" there).
    worst = np.full(market.n_positions, -1, dtype=np.int64)
    np.maximum.at(worst, market.pref_pos[assignment[matched]], market.pos_rank[assignment[matched]])

    # Slots a student prefers to their match: before the matched slot, or all when unmatched.
    cutoff = np.where(matched, assignment, ptr[1:])
    preferred = np.arange(len(market.pref_pos)) < cutoff[owner] if n else np.zeros(0, bool)
    p = market.pref_pos
    blocking = preferred & ((fill[p] < market.capacity[p]) | (market.pos_rank < worst[p]))
    slots = np.flatnonzero(blocking)
    pairs = [(int(owner[k]), int(p[k])) for k in slots[:max_listed]]
    return Certificate(
        stable=slots.size == 0,
        capacity_respected=capacity_ok,
        assignments_acceptable=acceptable,
        blocking_pairs=pairs,
    )
