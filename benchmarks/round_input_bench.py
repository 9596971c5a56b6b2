"""How a round's input read grows with the cohort: `MatchingStore.round_input` at 1,000 and
5,000 students (and any sizes given), against a real embedded MongoDB (SecantusDB, in
memory, on a free port).

Each size gets a cohort of its own: ~7 students per position, 5 choices each, every student
with an application (carrying the profile copy) and a later profile update, and one earlier
round's proposals for a tenth of them (so seats taken, busy students and ruled-out pairs are
read too). The read runs `--reps` times in a snapshot session; the best time is printed.

    .venv/bin/python benchmarks/round_input_bench.py [--sizes 1000 5000] [--reps 3]

With `--round`, one whole round per size is timed afterwards (`start_round s at N`).
The last line is `round_input ratio 5000/1000: R` (linear growth is 5.0).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.embedded.processes import free_port
from deploy.embedded.servers import EmbeddedServers
from services.matching.store import MatchingStore
from shared.mongo import Session, connect, in_transaction
from shared.outbox import Outbox

SECTORS = ("semiconductor", "automotive", "robotics_ai", "other")


def cohort_docs(cohort: str, n: int, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed)
    n_positions = max(1, n // 7)
    at = datetime(2027, 3, 1, tzinfo=UTC)
    positions = [
        {
            "_id": f"pos-{cohort}-{i:06d}",
            "cohort_id": cohort,
            "company_id": f"com-{i % 200:04d}",
            "sector": SECTORS[i % len(SECTORS)],
            "capacity": rng.randint(4, 9),
            "required_skills": ["python"] if i % 3 == 0 else [],
            "min_jlpt": "N3" if i % 4 == 0 else None,
            "min_english": None,
            "paid": True,
            "start_date": "2027-07-01",
            "end_date": "2027-08-31",
            "state": "open",
        }
        for i in range(n_positions)
    ]
    applications, profiles, proposals = [], [], []
    for s in range(n):
        student = f"stu-{cohort}-{s:06d}"
        facts = {
            "department": rng.choice(["Electrical Engineering", "Computer Science", "Design"]),
            "degree_program": "bachelor",
            "graduation_year": 2028,
            "jlpt_level": rng.choice(["N1", "N2", "N3", "N4", None]),
            "english_level": "B2",
            "skills": rng.sample(["python", "cad", "plc", "sql", "c"], 2),
            "available_from": "2027-06-01",
            "available_to": "2027-09-30",
            "consent_to_data_use": True,
        }
        choices = rng.sample(range(n_positions), min(5, n_positions))
        applications.append(
            {
                "_id": f"app-{cohort}-{s:06d}",
                "cohort_id": cohort,
                "student_id": student,
                "ranked_position_ids": [positions[c]["_id"] for c in choices],
                "submitted_at": (at + timedelta(seconds=s)).isoformat(),
                "state": "active",
                **facts,
            }
        )
        profiles.append(
            {"_id": student, **facts, "as_of": (at + timedelta(days=1, seconds=s)).isoformat()}
        )
        if s % 10 == 0:
            proposals.append(
                {
                    "_id": f"prop-{cohort}-{s:06d}",
                    "cohort_id": cohort,
                    "student_id": student,
                    "position_id": positions[choices[0]]["_id"],
                    "status": rng.choice(["declined", "expired", "proposed"]),
                }
            )
    return {
        "positions": positions,
        "applications": applications,
        "students": profiles,
        "proposals": proposals,
    }


async def measure(uri: str, sizes: list[int], reps: int, with_round: bool) -> dict[int, float]:
    client = connect(uri)
    db = client["round_input_bench"]
    store = MatchingStore(db, outbox=Outbox(db, source="/bench"))
    await store.ensure_indexes()
    best: dict[int, float] = {}
    try:
        for n in sizes:
            cohort = f"c{n}"
            for name, docs in cohort_docs(cohort, n).items():
                for start in range(0, len(docs), 1000):
                    await db[name].insert_many(docs[start : start + 1000])
            times = []
            for _ in range(reps):
                async with client.start_session() as session:
                    started = time.perf_counter()
                    round_input = await store.round_input(session, cohort, seed=1)
                    times.append(time.perf_counter() - started)
            best[n] = min(times)
            print(
                f"round_input s at {n}: {best[n]:.3f} "
                f"({len(round_input.students)} students, {len(round_input.positions)} positions)",
                flush=True,
            )
            if with_round:
                # The whole round once: its read, the matching, the proposals and their outbox
                # entries in bulk, the input and lists in chunks, in one transaction.
                await db["cohorts"].insert_one({"_id": cohort, "state": "closed"})

                async def run_round(session: Session, c: str = cohort) -> dict[str, Any]:
                    return await store.start_round(session, c, 1, timedelta(days=14))

                started = time.perf_counter()
                doc = await in_transaction(client, run_round)
                print(
                    f"start_round s at {n}: {time.perf_counter() - started:.3f} "
                    f"({len(doc['pairs'])} proposals)",
                    flush=True,
                )
    finally:
        await client.drop_database("round_input_bench")
        await client.close()
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--round", action="store_true", help="also time one whole round")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="round-input-bench-"))
    servers = EmbeddedServers(
        data_dir=work, mongo_port=free_port(), kafka=False, smtp=False, mongo_in_memory=True
    )
    servers.start()
    try:
        best = asyncio.run(measure(servers.mongodb_uri, args.sizes, args.reps, args.round))
    finally:
        servers.stop()
    low, high = min(best), max(best)
    if low != high:
        print(f"round_input ratio {high}/{low}: {best[high] / best[low]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
