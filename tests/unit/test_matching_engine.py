"""The deferred acceptance engine and its certificate, on generated markets."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain.certificate import certify
from services.matching.domain.deferred_acceptance import deferred_acceptance
from services.matching.domain.market import Market


@st.composite
def markets(draw: st.DrawFn, max_students: int = 12, max_positions: int = 6) -> Market:
    n_s = draw(st.integers(0, max_students))
    n_p = draw(st.integers(1, max_positions))
    capacity = draw(st.lists(st.integers(0, 3), min_size=n_p, max_size=n_p))
    student_prefs = [
        draw(st.permutations(range(n_p)).map(lambda p, k=draw(st.integers(0, n_p)): list(p)[:k]))
        for _ in range(n_s)
    ]
    position_prefs = []
    for p in range(n_p):
        applicants = [s for s in range(n_s) if p in student_prefs[s]]
        order = draw(st.permutations(applicants))
        # Some applicants are unacceptable to the position (left out of its ranking).
        keep = draw(st.integers(0, len(order)))
        position_prefs.append(list(order)[:keep])
    return Market.from_lists(capacity, student_prefs, position_prefs)


def matched_positions(market: Market, assignment: np.ndarray) -> list[int]:
    return [int(market.pref_pos[k]) if k >= 0 else -1 for k in assignment.tolist()]


def reference_da(market: Market) -> list[int]:
    """Textbook one-proposal-at-a-time student-proposing deferred acceptance."""
    ptr, pos, rank = market.pref_ptr.tolist(), market.pref_pos.tolist(), market.pos_rank.tolist()
    nxt = ptr[:-1].copy()
    held: dict[int, list[tuple[int, int]]] = {p: [] for p in range(market.n_positions)}
    free = list(range(market.n_students))
    while free:
        s = free.pop()
        if nxt[s] >= ptr[s + 1]:
            continue
        k = nxt[s]
        nxt[s] += 1
        p = pos[k]
        held[p].append((rank[k], s))
        held[p].sort()
        if len(held[p]) > market.capacity[p]:
            _, bumped = held[p].pop()
            free.append(bumped)
    result = [-1] * market.n_students
    for p, hs in held.items():
        for _, s in hs:
            result[s] = p
    return result


def student_pref_index(market: Market, s: int, p: int) -> int:
    """Lower is better; unmatched (-1) is worst."""
    lst = market.pref_pos[market.pref_ptr[s] : market.pref_ptr[s + 1]].tolist()
    return lst.index(p) if p >= 0 else len(lst)


def all_stable_matchings(market: Market) -> list[list[int]]:
    """Brute force: every assignment of students to an acceptable position or nothing that
    respects capacities and has no blocking pair."""
    options = []
    for s in range(market.n_students):
        lst = market.pref_pos[market.pref_ptr[s] : market.pref_ptr[s + 1]].tolist()
        options.append([-1, *lst])
    stable = []
    for combo in itertools.product(*options):
        slots = []
        ok = True
        for s, p in enumerate(combo):
            if p < 0:
                slots.append(-1)
                continue
            lst = market.pref_pos[market.pref_ptr[s] : market.pref_ptr[s + 1]].tolist()
            slots.append(int(market.pref_ptr[s]) + lst.index(p))
        counts = np.bincount([p for p in combo if p >= 0], minlength=market.n_positions)
        if np.any(counts > market.capacity):
            ok = False
        if ok and certify(market, np.asarray(slots, dtype=np.int64)).stable:
            stable.append(list(combo))
    return stable


@settings(max_examples=300, deadline=None)
@given(markets())
def test_result_is_stable_within_capacity_and_acceptable(market: Market) -> None:
    assignment = deferred_acceptance(market)
    cert = certify(market, assignment)
    assert cert.valid, cert


@settings(max_examples=300, deadline=None)
@given(markets())
def test_same_matching_as_the_textbook_algorithm(market: Market) -> None:
    assert matched_positions(market, deferred_acceptance(market)) == reference_da(market)


@settings(max_examples=150, deadline=None)
@given(markets(max_students=5, max_positions=3))
def test_student_optimal_among_all_stable_matchings(market: Market) -> None:
    ours = matched_positions(market, deferred_acceptance(market))
    stable = all_stable_matchings(market)
    assert ours in stable
    for other in stable:
        for s in range(market.n_students):
            assert student_pref_index(market, s, ours[s]) <= student_pref_index(market, s, other[s])


@settings(max_examples=100, deadline=None)
@given(markets())
def test_deterministic(market: Market) -> None:
    assert np.array_equal(deferred_acceptance(market), deferred_acceptance(market))


def test_certificate_finds_a_blocking_pair() -> None:
    # Two students, one seat each at p0 and p1; both prefer p0, p0 prefers student 0.
    market = Market.from_lists([1, 1], [[0, 1], [0, 1]], [[0, 1], [0, 1]])
    # Give p0 to student 1 and p1 to student 0: (0, p0) blocks.
    bad = np.asarray([1, 2], dtype=np.int64)  # slot 1 = student 0 -> p1, slot 2 = student 1 -> p0
    cert = certify(market, bad)
    assert not cert.stable
    assert cert.blocking_pairs == [(0, 0)]
    over = np.asarray([0, 2], dtype=np.int64)  # both at p0, capacity 1
    assert not certify(market, over).capacity_respected
    foreign = np.asarray([2, -1], dtype=np.int64)  # student 0 given student 1's slot
    assert not certify(market, foreign).assignments_acceptable
