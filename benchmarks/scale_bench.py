"""Scale benchmark: a cohort of N students end to end on the embedded stack (issue 20).

    make bench-scale                                   (N = 1000)
    make bench-scale ARGS="--students 1000 10000 --concurrency 16"
    .venv/bin/python benchmarks/scale_bench.py --students 300 --keep

For each N, on a fresh embedded stack of its own (Kafka, MongoDB, SMTP sink and the three
services as processes, on free ports of 127.0.0.1, as `make run` starts them):
1. setup: a cohort opened, ~N/21 companies registered and approved, ≈0.14·N positions with
   ≈0.9·N seats (varied JLPT minimums, skills and dates, so that some students are not matched);
2. intake: N students, `--concurrency` at a time, each a profile PUT then an application POST
   with 5 choices (popular positions more often chosen): requests per second, p99, and the
   last third's rate beside the first third's;
3. the cohort closed; once the matching service's read model holds every application and the
   students' confirmation mails have gone, one round (POST /rounds, timed request → 201);
4. drain: every mail the round causes (notifications' `plan` for `match-proposed` and
   `round-completed`: the proposal to the student and to the company, each unmatched student's
   notice, the coordinator's round summary: 2·proposed + unmatched + 1), read from the sink's
   mailbox folder and told apart by Message-ID (stable per planned message): lost = expected −
   received unique, duplicated = received − unique; then every `*.dlq` topic's entries.

It ends with these lines for each N (the format is checked by tests/unit/test_scale_bench.py):
    intake rps at N: X
    intake p99 ms at N: Y
    round s at N: R
    drain s at N: D
    lost mails at N: L
    dead letters at N: Q
and, with two or more N, how much each phase grew from the smallest N to each larger one.
Everything started is stopped by process group at the end, on errors and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from deploy.embedded.processes import Child, free_port, spawn
from deploy.embedded.servers import EmbeddedServers
from shared.auth import Role, mint_token
from shared.bounds import MAX_CAPACITY
from shared.mongo import connect
from shared.settings import CommonSettings

SERVICES = ("applications", "matching", "notifications")
# The mails one round causes (services/notifications/domain.py `plan`): `match-proposed`
# tells the student and the company (its reminders are due days later: not counted), and
# `round-completed` tells the coordinator and every unmatched student.
PROPOSAL_TEMPLATES = ("match_proposed.student", "match_proposed.company")
ROUND_TEMPLATES = (*PROPOSAL_TEMPLATES, "not_matched.student", "round_completed.coordinator")
INTAKE_TEMPLATE = "application_submitted.student"
# Long enough that no answer reminder falls due during the benchmark.
RESPOND_WITHIN_HOURS = 14 * 24
YEAR = datetime.now(UTC).year + 1
POSITIONS_PER_STUDENT = 0.14
SEATS_PER_STUDENT = 0.9
POSITIONS_PER_COMPANY = 3
CHOICES = 5


def say(text: str) -> None:
    print(text, flush=True)


# ------------------------------------------------------------------ pure helpers


def expected_round_mails(proposed: int, unmatched: int) -> int:
    """Mails a round causes: two per proposal, one per unmatched student, one summary."""
    return 2 * proposed + unmatched + 1


@dataclass(frozen=True)
class MailCount:
    received: int  # mails of the round's templates the sink holds
    unique: int  # distinct Message-IDs among them
    duplicated: int
    lost: int


def count_round_mails(message_ids: Iterable[str], expected: int) -> MailCount:
    """Message-IDs of the round's mails as received (one per file) against what is expected."""
    ids = list(message_ids)
    unique = len(set(ids))
    return MailCount(len(ids), unique, len(ids) - unique, max(0, expected - unique))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def thirds_ratio(started: float, completions: Sequence[float]) -> float:
    """The rate of the last third of the completions over that of the first third (1.0: no
    slowdown; 0.5: the last third went at half the speed of the first)."""
    done = sorted(completions)
    third = len(done) // 3
    if third == 0:
        return math.nan
    first = done[third - 1] - started
    last = done[-1] - done[len(done) - third - 1]
    if last <= 0:
        return math.inf
    return first / last


def plan_capacities(positions: int, seats: int, rng: random.Random) -> list[int]:
    """`positions` capacities between 1 and MAX_CAPACITY, varied (1 to ~2× the mean), that add
    up to `seats` (when 1 ≤ seats/positions ≤ MAX_CAPACITY)."""
    mean = seats / positions
    caps = [
        max(1, min(MAX_CAPACITY, round(rng.uniform(1, 2 * mean - 1)))) for _ in range(positions)
    ]
    while (diff := seats - sum(caps)) != 0:
        i = rng.randrange(positions)
        if diff > 0 and caps[i] < MAX_CAPACITY:
            caps[i] += 1
        elif diff < 0 and caps[i] > 1:
            caps[i] -= 1
    return caps


@dataclass(frozen=True)
class Figures:
    students: int
    intake_rps: float
    intake_p99_ms: float
    round_s: float
    drain_s: float
    lost_mails: int
    dead_letters: int
    # Not in the fixed lines, for the growth table and the notes.
    intake_s: float = math.nan
    thirds: float = math.nan
    intake_errors: int = 0
    duplicated_mails: int = 0
    expected_mails: int = 0
    drained: bool = True


def result_lines(f: Figures) -> list[str]:
    n = f.students
    return [
        f"intake rps at {n}: {f.intake_rps:.1f}",
        f"intake p99 ms at {n}: {f.intake_p99_ms:.0f}",
        f"round s at {n}: {f.round_s:.1f}",
        f"drain s at {n}: {f.drain_s:.1f}",
        f"lost mails at {n}: {f.lost_mails}",
        f"dead letters at {n}: {f.dead_letters}",
    ]


def growth_lines(small: Figures, large: Figures) -> list[str]:
    """How much each phase's time grew from `small` to `large` (the goal: ≤ 15× for 10×)."""
    label = f"{small.students}->{large.students} (x{large.students / small.students:.1f} students)"

    def ratio(a: float, b: float) -> str:
        return f"{b / a:.2f}" if a > 0 and math.isfinite(a) and math.isfinite(b) else "n/a"

    return [
        f"intake s growth {label}: {ratio(small.intake_s, large.intake_s)}",
        f"intake p99 growth {label}: {ratio(small.intake_p99_ms, large.intake_p99_ms)}",
        f"round s growth {label}: {ratio(small.round_s, large.round_s)}",
        f"drain s growth {label}: {ratio(small.drain_s, large.drain_s)}",
    ]


# ------------------------------------------------------------------ the cohort's data

DEPARTMENTS = (
    "Electrical Engineering",
    "Electronic Engineering",
    "Mechanical Engineering",
    "Computer Science and Information Engineering",
    "Chemical Engineering and Biotechnology",
    "Industrial Design",
    "Materials and Mineral Resources Engineering",
)
SKILLS = (
    "python",
    "c",
    "c++",
    "verilog",
    "matlab",
    "cad",
    "plc",
    "ros",
    "machine learning",
    "embedded linux",
    "java",
    "sql",
    "labview",
    "solidworks",
    "statistics",
)
SECTORS = ("semiconductor", "automotive", "robotics_ai", "other")
TRACKS = ("development_design_programming", "production_line", "joint_research")
LANGUAGES = ("zh-TW", "ja", "en")


def day(month_day: str) -> str:
    return f"{YEAR}-{month_day}"


def weighted(rng: random.Random, options: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([o for o, _ in options], [w for _, w in options])[0]


def position_body(rng: random.Random, cohort: str, capacity: int) -> dict[str, Any]:
    start, end = weighted(rng, [(("07-01", "08-31"), 0.7), (("08-01", "09-10"), 0.3)])
    return {
        "cohort_id": cohort,
        "title": rng.choice(("Wafer inspection software", "Line automation", "Robot vision")),
        "track": rng.choice(TRACKS),
        "capacity": capacity,
        "required_skills": rng.sample(SKILLS, rng.randint(1, 3)),
        "min_jlpt": weighted(
            rng, [(None, 0.2), ("N4", 0.2), ("N3", 0.35), ("N2", 0.2), ("N1", 0.05)]
        ),
        "paid": rng.random() < 0.8,
        "start_date": day(start),
        "end_date": day(end),
        "location": "Kitakyushu Science and Research Park",
    }


def student_body(rng: random.Random, student_id: str) -> dict[str, Any]:
    available = weighted(rng, [(("06-15", "09-15"), 0.8), (("07-15", "08-20"), 0.2)])
    body: dict[str, Any] = {
        "name": f"學生 {student_id}",
        "email": f"{student_id}@example.tw",
        "department": rng.choice(DEPARTMENTS),
        "degree_program": weighted(rng, [("bachelor", 0.5), ("master", 0.45), ("phd", 0.05)]),
        "graduation_year": YEAR + rng.randint(0, 2),
        "english_level": rng.choice(("A2", "B1", "B2", "C1")),
        "skills": rng.sample(SKILLS, rng.randint(1, 5)),
        "available_from": day(available[0]),
        "available_to": day(available[1]),
        "preferred_language": weighted(rng, [("zh-TW", 0.7), ("en", 0.2), ("ja", 0.1)]),
        "consent_to_data_use": True,
    }
    jlpt = weighted(
        rng, [(None, 0.1), ("N5", 0.05), ("N4", 0.15), ("N3", 0.3), ("N2", 0.3), ("N1", 0.1)]
    )
    if jlpt:
        body["jlpt_level"] = jlpt
    return body


def choices(rng: random.Random, positions: Sequence[str], weights: Sequence[float]) -> list[str]:
    """CHOICES distinct positions, popular ones (high weight) more often."""
    picked: list[str] = []
    while len(picked) < min(CHOICES, len(positions)):
        p = rng.choices(positions, weights)[0]
        if p not in picked:
            picked.append(p)
    return picked


# ------------------------------------------------------------------ the stack


@dataclass
class Stack:
    work: Path
    servers: EmbeddedServers
    jwt_secret: str
    ports: dict[str, int] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.servers.host

    def url(self, service: str) -> str:
        return f"http://{self.host}:{self.ports[service]}"

    def database(self, service: str) -> str:
        return f"scale_{service}"

    def token(self, role: Role, sub: str) -> str:
        settings = CommonSettings(jwt_secret=self.jwt_secret)  # type: ignore[arg-type]
        return mint_token(settings, role, sub, timedelta(hours=6))

    def start(self) -> None:
        self.servers.start()
        self.ports = {name: free_port() for name in SERVICES}
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.servers.kafka_bootstrap,
            "MONGODB_URI": self.servers.mongodb_uri,
            "SMTP_HOST": self.host,
            "SMTP_PORT": str(self.servers.smtp_port),
            "JWT_SECRET": self.jwt_secret,
            "HTTP_HOST": self.host,
            "APPLICATIONS_URL": self.url("applications"),
            # The program's address gets the round summary (no coordinator signed up here).
            "COORDINATOR_EMAIL": "coordinator@city.example",
            **{f"{n.upper()}_HTTP_PORT": str(p) for n, p in self.ports.items()},
            **{f"{n.upper()}_DATABASE": self.database(n) for n in SERVICES},
        }
        for name in SERVICES:
            self.children[name] = spawn(
                name,
                [sys.executable, "-m", f"services.{name}"],
                self.servers.logs / f"{name}.log",
                env,
            )

    async def wait_ready(self, timeout: float = 180) -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            for name, child in self.children.items():
                deadline = time.monotonic() + timeout
                while True:
                    if not child.alive():
                        raise RuntimeError(f"{name} exited at start:\n{child.log_tail()}")
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"{self.url(name)}/health/ready")).status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{name} not ready in {timeout:.0f} s:\n{child.log_tail()}"
                        )
                    await asyncio.sleep(0.5)

    def check_alive(self) -> None:
        for name, child in self.children.items():
            if not child.alive():
                raise RuntimeError(
                    f"{name} exited (code {child.popen.poll()}):\n{child.log_tail()}"
                )

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            child.stop()
        self.children.clear()
        self.servers.stop()


class ApiError(RuntimeError):
    pass


class Api:
    """The services' HTTP APIs as the coordinator, companies and students call them."""

    def __init__(self, stack: Stack, http: httpx.AsyncClient) -> None:
        self.stack = stack
        self.http = http
        self.coordinator = self.auth(Role.COORDINATOR, "coordinator")

    def auth(self, role: Role, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.token(role, sub)}"}

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        headers: dict[str, str],
        json: Any = None,
        expect: int = 200,
    ) -> Any:
        url = f"{self.stack.url(service)}{path}"
        try:
            response = await self.http.request(method, url, headers=headers, json=json)
        except httpx.HTTPError as exc:
            raise ApiError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != expect:
            raise ApiError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()


async def bounded(
    concurrency: int, items: Sequence[Any], work: Callable[[Any], Awaitable[None]]
) -> None:
    """`work` on every item, at most `concurrency` at a time."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))


# ------------------------------------------------------------------ watching the outcome


class Mailbox:
    """The sink's mailbox folder, read incrementally: per template, the Message-IDs received
    and the latest receipt time (the sink names each file by its UTC receipt time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: set[str] = set()
        self.ids: dict[str, list[str]] = {}
        self.last: dict[str, float] = {}
        self.parser = BytesHeaderParser()

    def scan(self) -> None:
        if not self.path.exists():
            return
        for entry in os.scandir(self.path):
            name = entry.name
            if not name.endswith(".eml") or name in self.seen:
                continue
            self.seen.add(name)
            with open(entry.path, "rb") as f:
                headers = self.parser.parse(f)
            template = headers.get("X-Template", "")
            self.ids.setdefault(template, []).append(headers.get("Message-ID", name))
            stamp = datetime.strptime(name.split("-", 1)[0], "%Y%m%dT%H%M%S.%fZ")
            when = stamp.replace(tzinfo=UTC).timestamp()
            self.last[template] = max(when, self.last.get(template, when))

    def of(self, templates: Iterable[str]) -> list[str]:
        return [i for t in templates for i in self.ids.get(t, [])]

    def unique(self, templates: Iterable[str]) -> int:
        return len(set(self.of(templates)))

    def last_receipt(self, templates: Iterable[str]) -> float:
        return max((self.last[t] for t in templates if t in self.last), default=math.nan)


async def dead_letters(bootstrap: str) -> dict[str, int]:
    """Entries in every `*.dlq` topic (end offset − beginning offset, summed over partitions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if t.endswith(".dlq"))
        counts: dict[str, int] = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
            if not tps:
                continue
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            counts[topic] = sum(end[tp] - begin[tp] for tp in tps)
        return counts
    finally:
        await consumer.stop()


async def wait_until(
    what: str,
    progress: Callable[[], Awaitable[tuple[int, int]]],
    timeout: float,
    stack: Stack,
    every: float = 15.0,
) -> float:
    """Poll `progress` (done, total) until done ≥ total; seconds taken. Raises on timeout."""
    started = time.monotonic()
    last_report = started
    while True:
        done, total = await progress()
        if done >= total:
            return time.monotonic() - started
        now = time.monotonic()
        if now - started > timeout:
            raise TimeoutError(f"{what}: {done}/{total} after {timeout:.0f} s")
        if now - last_report >= every:
            say(f"    ... {what}: {done}/{total} ({now - started:.0f} s)")
            last_report = now
        stack.check_alive()
        await asyncio.sleep(1.0)


# ------------------------------------------------------------------ one run


@dataclass
class Intake:
    latencies: list[float] = field(default_factory=list)
    completions: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)


async def run_one(n: int, args: argparse.Namespace, stack: Stack) -> Figures:
    rng = random.Random(args.seed + n)
    n_positions = max(1, round(n * POSITIONS_PER_STUDENT))
    n_seats = max(n_positions, round(n * SEATS_PER_STUDENT))
    n_companies = max(1, math.ceil(n_positions / POSITIONS_PER_COMPANY))
    capacities = plan_capacities(n_positions, n_seats, rng)
    limits = httpx.Limits(max_connections=args.concurrency + 4)
    async with httpx.AsyncClient(timeout=args.request_timeout, limits=limits) as http:
        api = Api(stack, http)

        # -- setup: cohort, companies, positions
        t0 = time.monotonic()
        cohort = f"{YEAR}-scale-{n}-{secrets.token_hex(3)}"
        now = datetime.now(UTC)
        await api.call(
            "POST",
            "applications",
            "/cohorts",
            api.coordinator,
            {
                "id": cohort,
                "name": f"Scale benchmark, {n} students",
                "application_opens": (now - timedelta(days=1)).isoformat(),
                "application_closes": (now + timedelta(days=30)).isoformat(),
            },
            expect=201,
        )
        await api.call("POST", "applications", f"/cohorts/{cohort}/open", api.coordinator)
        # By creation index, not completion order: the same seed gives the same cohort.
        companies = [""] * n_companies

        async def company(i: int) -> None:
            sector = SECTORS[i % len(SECTORS)]
            body = await api.call(
                "POST",
                "applications",
                "/companies",
                {},
                {
                    "name_ja": f"北九州スケール{i}株式会社",
                    "name_en": f"Kitakyushu Scale {i} Co., Ltd.",
                    "sector": sector,
                    "ward": "Wakamatsu-ku",
                    "address": "2-1 Hibikino, Wakamatsu-ku, Kitakyushu",
                    "contact": {
                        "name": f"採用担当 {i}",
                        "email": f"hr{i}-{cohort}@example.jp",
                        "preferred_language": LANGUAGES[i % 3],
                    },
                },
                expect=201,
            )
            await api.call(
                "POST", "applications", f"/companies/{body['id']}/approve", api.coordinator
            )
            companies[i] = str(body["id"])

        await bounded(args.concurrency, range(n_companies), company)
        positions = [""] * n_positions
        bodies = [position_body(rng, cohort, c) for c in capacities]

        async def position(i: int) -> None:
            company_id = companies[i % len(companies)]
            created = await api.call(
                "POST",
                "applications",
                "/positions",
                api.auth(Role.COMPANY, company_id),
                bodies[i],
                expect=201,
            )
            positions[i] = str(created["id"])

        await bounded(args.concurrency, range(n_positions), position)
        # A few positions draw most applicants, as in a real cohort.
        popularity = [1 / (rank + 1) ** 0.8 for rank in range(len(positions))]
        rng.shuffle(popularity)
        say(
            f"  setup: cohort {cohort}, {n_companies} companies, {n_positions} positions, "
            f"{n_seats} seats ({time.monotonic() - t0:.0f} s)"
        )

        # -- intake
        students = [f"stu-scale-{i:06d}" for i in range(n)]
        profiles = {s: student_body(rng, s) for s in students}
        ranked = {s: choices(rng, positions, popularity) for s in students}
        intake = Intake()
        started = time.monotonic()

        async def timed(call: Awaitable[Any]) -> None:
            t = time.monotonic()
            try:
                await call
            finally:
                intake.latencies.append(time.monotonic() - t)

        async def apply(student: str) -> None:
            headers = api.auth(Role.STUDENT, student)
            try:
                await timed(
                    api.call(
                        "PUT", "applications", f"/students/{student}", headers, profiles[student]
                    )
                )
                await timed(
                    api.call(
                        "POST",
                        "applications",
                        "/applications",
                        headers,
                        {
                            "cohort_id": cohort,
                            "ranked_position_ids": ranked[student],
                            "motivation": "I would like to build my career in Kitakyushu.",
                        },
                        expect=201,
                    )
                )
                intake.applied.append(student)
            except ApiError as exc:
                intake.errors.append(f"{student}: {exc}")
                if len(intake.errors) <= 3:
                    say(f"    intake error: {student}: {exc}")
                if len(intake.errors) > max(10, n // 20):
                    raise RuntimeError(f"intake: {len(intake.errors)} errors, stopping") from exc
            intake.completions.append(time.monotonic())

        async def report_progress() -> None:
            next_share, last = 0.1, time.monotonic()
            while True:
                await asyncio.sleep(1.0)
                done = len(intake.completions)
                if done / n >= next_share or time.monotonic() - last >= args.progress_seconds:
                    while done / n >= next_share:
                        next_share += 0.1
                    last = time.monotonic()
                    elapsed = last - started
                    say(
                        f"    intake {done}/{n} students ({done / n:.0%}), "
                        f"{len(intake.latencies) / elapsed:.1f} req/s, "
                        f"p99 {percentile(intake.latencies, 0.99) * 1000:.0f} ms, "
                        f"{len(intake.errors)} errors, {elapsed:.0f} s"
                    )

        say(f"  intake: {n} students, {args.concurrency} at a time ...")
        reporter = asyncio.create_task(report_progress())
        try:
            await bounded(args.concurrency, students, apply)
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
        intake_s = time.monotonic() - started
        requests = len(intake.latencies)
        rps = requests / intake_s
        p99 = percentile(intake.latencies, 0.99) * 1000
        thirds = thirds_ratio(started, intake.completions)
        say(
            f"  intake done: {len(intake.applied)} applications, {requests} requests in "
            f"{intake_s:.0f} s ({rps:.1f} req/s, p99 {p99:.0f} ms, max "
            f"{max(intake.latencies, default=0) * 1000:.0f} ms, {len(intake.errors)} errors)"
        )
        say(f"  intake last third / first third rate at {n}: {thirds:.2f}")

        # -- the round, once matching knows every application and the intake mails have gone
        await api.call("POST", "applications", f"/cohorts/{cohort}/close", api.coordinator)
        client = connect(stack.servers.mongodb_uri)
        try:
            matching = client[stack.database("matching")]
            expected_apps = len(intake.applied)

            async def read_model() -> tuple[int, int]:
                apps = await matching["applications"].count_documents(
                    {"cohort_id": cohort, "state": "active", "ranked_position_ids": {"$exists": 1}}
                )
                open_positions = await matching["positions"].count_documents(
                    {"cohort_id": cohort, "state": "open", "capacity": {"$exists": True}}
                )
                closed = await matching["cohorts"].count_documents(
                    {"_id": cohort, "state": "closed"}
                )
                return apps + open_positions + closed, expected_apps + n_positions + 1

            ready = await wait_until("matching's read model", read_model, args.drain_timeout, stack)
            say(f"  matching's read model complete {ready:.1f} s after the intake")
        finally:
            await client.close()
        assert stack.servers.mailbox is not None
        mailbox = Mailbox(stack.servers.mailbox)

        async def intake_mails() -> tuple[int, int]:
            await asyncio.to_thread(mailbox.scan)
            return mailbox.unique([INTAKE_TEMPLATE]), expected_apps

        waited = await wait_until(
            "intake confirmation mails", intake_mails, args.drain_timeout, stack
        )
        say(f"  intake confirmation mails all received {waited:.1f} s later")

        say("  round: POST /rounds ...")
        round_wall = time.time()
        t = time.monotonic()
        doc = await api.call(
            "POST",
            "matching",
            "/rounds",
            api.coordinator,
            {"cohort_id": cohort, "seed": args.seed, "respond_within_hours": RESPOND_WITHIN_HOURS},
            expect=201,
        )
        round_s = time.monotonic() - t
        answered_wall = time.time()
        stats = doc["statistics"]
        expected = expected_round_mails(stats["proposed"], stats["unmatched"])
        say(
            f"  round {doc['_id'] if '_id' in doc else doc.get('id')}: {stats['students']} "
            f"students, {stats['seats']} seats, {stats['proposed']} proposed, "
            f"{stats['unmatched']} unmatched in {round_s:.1f} s; expecting {expected} mails "
            f"({2 * stats['proposed']} proposals, {stats['unmatched']} not-matched notices, "
            "1 round summary)"
        )

        # -- drain
        async def round_mails() -> tuple[int, int]:
            await asyncio.to_thread(mailbox.scan)
            return mailbox.unique(ROUND_TEMPLATES), expected

        drained = True
        try:
            await wait_until("round mails", round_mails, args.drain_timeout, stack)
        except TimeoutError as exc:
            drained = False
            say(f"  NOT DRAINED: {exc}")
        # Late duplicates (a resend after a timeout) arrive after the first copy.
        await asyncio.sleep(args.grace)
        await asyncio.to_thread(mailbox.scan)
        counted = count_round_mails(mailbox.of(ROUND_TEMPLATES), expected)
        last = mailbox.last_receipt(ROUND_TEMPLATES)
        drain_s = (last - answered_wall) if drained else args.drain_timeout
        for template in ROUND_TEMPLATES:
            say(f"    {template}: {mailbox.unique([template])} received")
        say(
            f"  drain: {counted.unique}/{expected} round mails "
            f"({counted.duplicated} duplicated, {counted.lost} lost), last one "
            f"{last - round_wall:.1f} s after the round was requested"
        )
        dlq = await dead_letters(stack.servers.kafka_bootstrap)
        for topic, count in dlq.items():
            if count:
                say(f"    dead letters in {topic}: {count}")
    return Figures(
        students=n,
        intake_rps=rps,
        intake_p99_ms=p99,
        round_s=round_s,
        drain_s=drain_s,
        lost_mails=counted.lost,
        dead_letters=sum(dlq.values()),
        intake_s=intake_s,
        thirds=thirds,
        intake_errors=len(intake.errors),
        duplicated_mails=counted.duplicated,
        expected_mails=expected,
        drained=drained,
    )


def run_n(n: int, args: argparse.Namespace) -> Figures:
    """One N on a fresh stack of its own, stopped (by process group) whatever happens."""
    work = Path(tempfile.mkdtemp(prefix=f"scale-bench-{n}-"))
    servers = EmbeddedServers(
        data_dir=work, kafka_port=free_port(), mongo_port=free_port(), smtp_port=free_port()
    )
    stack = Stack(work, servers, secrets.token_urlsafe(32))
    say(f"\n== {n} students; data and logs in {work}; load average {load()}")
    try:
        say("  starting Kafka, MongoDB, the SMTP sink and the three services ...")
        stack.start()
        asyncio.run(stack.wait_ready())
        figures = asyncio.run(run_one(n, args, stack))
    finally:
        say("  stopping the stack ...")
        stack.stop()
        if args.keep:
            say(f"  data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for line in result_lines(figures):
        say(line)
    return figures


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--students",
        type=int,
        nargs="+",
        default=[1000],
        metavar="N",
        help="cohort sizes, each on a fresh stack (default 1000)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=900,
        help="seconds to wait for the read model, the intake mails and the round's mails",
    )
    parser.add_argument("--request-timeout", type=float, default=120, help="per HTTP request")
    parser.add_argument("--grace", type=float, default=5, help="seconds to wait for duplicates")
    parser.add_argument("--progress-seconds", type=float, default=15)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep each N's data and logs")
    args = parser.parse_args(argv)
    if any(n < 3 for n in args.students):
        parser.error("--students: at least 3")

    def interrupted(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # stop the stack as on Ctrl-C
    say(f"Scale benchmark: N = {', '.join(map(str, args.students))}; load average {load()}")
    results: list[Figures] = []
    try:
        for n in args.students:
            results.append(run_n(n, args))
    except KeyboardInterrupt:
        say("\ninterrupted; everything started was stopped")
        return 130
    except (RuntimeError, TimeoutError, OSError) as exc:
        say(f"\nfailed: {exc}")
        return 1
    say(f"\nLoad average at the end: {load()}")
    for f in results:
        notes = []
        if not f.drained:
            notes.append(f"round mails NOT all received within {args.drain_timeout:.0f} s")
        if f.intake_errors:
            notes.append(f"{f.intake_errors} students' intake failed")
        if f.duplicated_mails:
            notes.append(f"{f.duplicated_mails} mails duplicated")
        say(
            f"\n{f.students} students: {f.expected_mails} round mails expected; "
            f"intake {f.intake_s:.0f} s, last third at {f.thirds:.2f}x the first third's rate"
            + (f"; {'; '.join(notes)}" if notes else "")
        )
        for line in result_lines(f):
            say(line)
    ordered = sorted(results, key=lambda f: f.students)
    for large in ordered[1:]:
        say("")
        for line in growth_lines(ordered[0], large):
            say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
