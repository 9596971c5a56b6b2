"""Matching engine benchmark at the scale of the 2025 US residency match.

Synthetic, seeded instance: 47,208 applicants, 6,626 programs, 43,237 seats, about 12 ranks
per applicant (programs drawn with a skewed popularity), every program ranking everyone who
applied to it. Times our engine (deferred acceptance + stability certificate) and, on the
same instance in the same process, the `matching` package (PyPI 1.4.3, hospital-resident
game), checks both give the same applicant-optimal matching, and prints the ratio.

    make bench            (installs matching==1.4.3 into the venv first)

The last line is `speedup: N.Nx`: our solve + check against `matching`'s solve alone, at
full scale.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.matching.domain.certificate import certify
from services.matching.domain.deferred_acceptance import deferred_acceptance
from services.matching.domain.market import Market

FULL = {"applicants": 47_208, "programs": 6_626, "seats": 43_237, "ranks": 12}


def make_instance(applicants: int, programs: int, seats: int, ranks: int, seed: int) -> Market:
    rng = np.random.default_rng(seed)
    # Every program has at least one seat; the rest are spread by a skewed size.
    weights = rng.pareto(2.0, programs) + 1
    extra = rng.multinomial(seats - programs, weights / weights.sum())
    capacity = (extra + 1).astype(np.int64)
    # Popularity: some programs are far more wanted than others.
    popularity = rng.pareto(1.5, programs) + 1
    popularity /= popularity.sum()
    lengths = np.clip(rng.poisson(ranks, applicants), 1, programs).astype(np.int64)
    ptr = np.zeros(applicants + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    pos = np.empty(ptr[-1], dtype=np.int64)
    for s in range(applicants):
        pos[ptr[s] : ptr[s + 1]] = rng.choice(
            programs, size=lengths[s], replace=False, p=popularity
        )
    # Each program ranks all its applicants in a random order.
    owner = np.repeat(np.arange(applicants), lengths)
    key = rng.random(len(pos))
    order = np.lexsort((key, pos))
    rank = np.empty(len(pos), dtype=np.int64)
    sorted_pos = pos[order]
    starts = np.flatnonzero(np.r_[True, sorted_pos[1:] != sorted_pos[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank[order] = np.arange(len(order)) - group_start
    del owner
    return Market(capacity=capacity, pref_ptr=ptr, pref_pos=pos, pos_rank=rank)


def ours(market: Market) -> tuple[dict[int, int], float, float]:
    t0 = time.perf_counter()
    assignment = deferred_acceptance(market)
    t1 = time.perf_counter()
    cert = certify(market, assignment)
    t2 = time.perf_counter()
    assert cert.valid, cert
    result = {s: int(market.pref_pos[k]) for s, k in enumerate(assignment.tolist()) if k >= 0}
    return result, t1 - t0, t2 - t1


def as_dictionaries(market: Market) -> tuple[dict, dict, dict]:
    ptr, pos, rank = market.pref_ptr, market.pref_pos, market.pos_rank
    resident_prefs = {
        f"r{s}": [f"h{p}" for p in pos[ptr[s] : ptr[s + 1]].tolist()]
        for s in range(market.n_students)
    }
    owner = market.slot_student
    order = np.lexsort((rank, pos))
    hospital_prefs: dict[str, list[str]] = {f"h{p}": [] for p in range(market.n_positions)}
    for k in order.tolist():
        hospital_prefs[f"h{pos[k]}"].append(f"r{owner[k]}")
    capacities = {f"h{p}": int(c) for p, c in enumerate(market.capacity.tolist())}
    return resident_prefs, hospital_prefs, capacities


def theirs_solve_alone(market: Market) -> tuple[dict[int, int], float, float]:
    """`matching`'s algorithm on prebuilt players: its solve, without the game's deepcopy."""
    from matching.algorithms.hospital_resident import hospital_resident
    from matching.games.hospital_resident import _make_players

    t0 = time.perf_counter()
    residents, hospitals = _make_players(*as_dictionaries(market))
    t1 = time.perf_counter()
    solution = hospital_resident(residents, hospitals, optimal="resident")
    t2 = time.perf_counter()
    result = {int(r.name[1:]): int(h.name[1:]) for h, rs in solution.items() for r in rs}
    return result, t1 - t0, t2 - t1


def _end_to_end(market: Market, out: mp.Queue) -> None:
    from matching.games import HospitalResident

    t0 = time.perf_counter()
    try:
        game = HospitalResident.create_from_dictionaries(*as_dictionaries(market))
        game.solve(optimal="resident")
        stable = game.check_stability()
        out.put(("ok", time.perf_counter() - t0, stable))
    except RecursionError as exc:
        out.put(("RecursionError", time.perf_counter() - t0, str(exc)[:80]))


def theirs_end_to_end(market: Market, limit: float) -> str:
    """Its usual entry point (create_from_dictionaries + solve + check_stability), in a
    child process with a time limit."""
    queue: mp.Queue = mp.Queue()
    child = mp.get_context("fork").Process(target=_end_to_end, args=(market, queue))
    t0 = time.perf_counter()
    child.start()
    child.join(limit)
    if child.is_alive():
        child.kill()
        child.join()
        return f"did not finish in {limit:.0f} s (stopped)"
    if queue.empty():
        return f"crashed (exit code {child.exitcode}) after {time.perf_counter() - t0:.1f} s"
    status, seconds, detail = queue.get()
    if status == "ok":
        return f"{seconds:.2f} s (stable: {detail})"
    return f"{status} after {seconds:.1f} s ({detail})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--end-to-end-limit", type=float, default=300.0)
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args()
    try:
        import matching  # noqa: F401
    except ImportError:
        print("the baseline needs `matching` (pip install matching==1.4.3, or `make bench`)")
        return 2

    print("growth with size (ours = solve + check; matching = its solve alone):", flush=True)
    print(
        f"{'applicants':>10} {'programs':>8} {'seats':>7} {'ours s':>8} {'matching s':>10} "
        f"{'ratio':>6}"
    )
    full_ratio = 0.0
    full_market = None
    for applicants in (1_000, 10_000, FULL["applicants"]):
        scale = applicants / FULL["applicants"]
        programs = max(10, round(FULL["programs"] * scale))
        seats = max(programs, round(FULL["seats"] * scale))
        t = time.perf_counter()
        market = make_instance(applicants, programs, seats, FULL["ranks"], args.seed)
        build = time.perf_counter() - t
        mine, solve, check = ours(market)
        theirs, their_build, their_solve = theirs_solve_alone(market)
        if mine != theirs:
            print(f"MISMATCH at {applicants} applicants: matchings differ")
            return 1
        ratio = their_solve / (solve + check)
        print(
            f"{applicants:>10} {programs:>8} {seats:>7} {solve + check:>8.3f} "
            f"{their_solve:>10.3f} {ratio:>5.1f}x   (same matching: {len(mine)} matched; "
            f"instance {build:.1f} s, their players {their_build:.1f} s)",
            flush=True,
        )
        full_ratio = ratio
        full_market = market
        if applicants == FULL["applicants"]:
            print(
                f"full scale: ours solve {solve:.3f} s + check {check:.3f} s; "
                f"matching solve {their_solve:.3f} s; {len(mine)} of {applicants} matched, "
                f"{int(market.capacity.sum())} seats",
                flush=True,
            )
    if not args.skip_end_to_end and full_market is not None:
        print(
            "matching end to end (create_from_dictionaries + solve + check_stability): "
            + theirs_end_to_end(full_market, args.end_to_end_limit),
            flush=True,
        )
    print(f"speedup: {full_ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
