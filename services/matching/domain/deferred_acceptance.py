"""Student-proposing deferred acceptance with capacities, vectorised with numpy.

All free students propose at once to their next acceptable position; each position keeps
its best `capacity` proposers among those it holds and the new ones, and rejects the rest.
This simultaneous-proposal variant ends in the same student-optimal stable matching as the
one-at-a-time algorithm (the outcome of deferred acceptance does not depend on the order of
proposals), while each round is a handful of array operations.
"""

from __future__ import annotations

import numpy as np

from services.matching.domain.market import IntArray, Market

ALGORITHM_VERSION = "student-proposing-da/numpy-rounds/1"


def deferred_acceptance(market: Market) -> IntArray:
    """The student-optimal stable matching, as the matched slot of each student (-1 = none).

    A slot index `k` identifies both the student's position `market.pref_pos[k]` and the
    position's rank of the student `market.pos_rank[k]`.
    """
    n = market.n_students
    ptr = market.pref_ptr
    pos = market.pref_pos
    rank = market.pos_rank
    cap = market.capacity
    end = ptr[1:]

    next_slot = ptr[:-1].copy()  # each student's next proposal
    held = np.empty(0, dtype=np.int64)  # slots currently held by positions
    free = np.flatnonzero(next_slot < end)  # students still proposing
    touched = np.zeros(market.n_positions, dtype=bool)

    while free.size:
        proposals = next_slot[free]
        next_slot[free] += 1
        proposal_pos = pos[proposals]
        # Only positions that received a proposal can change what they hold.
        touched[:] = False
        touched[proposal_pos] = True
        held_here = held[touched[pos[held]]]
        untouched = held[~touched[pos[held]]]
        contest = np.concatenate((held_here, proposals))
        c_pos = pos[contest]
        order = np.lexsort((rank[contest], c_pos))
        contest = contest[order]
        c_pos = c_pos[order]
        # Place of each contestant within its position's queue.
        starts = np.flatnonzero(np.r_[True, c_pos[1:] != c_pos[:-1]])
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(c_pos)]))
        place = np.arange(len(c_pos)) - group_start
        keep = place < cap[c_pos]
        held = np.concatenate((untouched, contest[keep]))
        rejected = contest[~keep]
        rejected_students = np.searchsorted(ptr, rejected, side="right") - 1
        free = rejected_students[next_slot[rejected_students] < end[rejected_students]]

    assignment = np.full(n, -1, dtype=np.int64)
    if held.size:
        assignment[np.searchsorted(ptr, held, side="right") - 1] = held
    return assignment
