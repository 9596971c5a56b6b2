"""Every link in every kind of mail leads to the portal people reach, as `make run` starts the
platform: the portal on a port of its own (not 8000), and the season's flow run through the
APIs. Each link starts with the portal's address and answers (a page, or the sign-in page for
one that needs a session; never 404). Also: `make user` works on the stack's ports and the
coordinator it adds receives the round summary, and without the stack it says so in one line.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from deploy.embedded.processes import free_port
from tests.browser.api import Api
from tests.browser.stack import Stack
from tests.e2e.test_make_run import ROOT, Launcher

pytestmark = pytest.mark.e2e

URL = re.compile(r"https?://[^\s<>\"')）]+")
# Every kind of mail the season's flow sends (the portal's sign-in link besides).
KINDS = {
    "company_pending.company",
    "company_approved.company",
    "application_submitted.student",
    "match_proposed.student",
    "match_proposed.company",
    "round_completed.coordinator",
    "match_accepted.company",
    "placement_confirmed.student",
    "placement_confirmed.company",
    "placement_confirmed.coordinator",
}


@pytest.fixture
def launcher(tmp_path: Path):  # type: ignore[no-untyped-def]
    names = ("kafka", "mongo", "smtp", "applications", "matching", "notifications", "portal")
    ports = {n: free_port() for n in names}
    assert ports["portal"] != 8000
    la = Launcher(tmp_path / "data", ports)
    yield la
    if la.proc is not None and la.proc.poll() is None:
        la.interrupt()


def command_env(launcher: Launcher, **extra: str) -> dict[str, str]:
    """A second terminal beside `make run`: none of the stack's settings, its data folder."""
    stack = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "SMTP_HOST", "JWT_SECRET", "PUBLIC_BASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in stack and not k.endswith("_URL")}
    return {**env, "EMBEDDED_DATA_DIR": str(launcher.data_dir), **extra}


def mails(mailbox: Path, addresses: set[str]) -> list[EmailMessage]:
    found = []
    for path in sorted(mailbox.glob("*.eml")):
        with path.open("rb") as f:
            message = email.message_from_binary_file(f, policy=email.policy.default)
        if any(a in str(message["To"]) for a in addresses):
            found.append(message)  # type: ignore[arg-type]
    return found


def test_every_mail_links_to_the_portal_people_reach(launcher: Launcher) -> None:
    launcher.start()
    portal = f"http://127.0.0.1:{launcher.ports['portal']}"
    tag = uuid.uuid4().hex[:6]
    coordinator = f"coordinator-{tag}@city.kitakyushu.example"

    # `make user` on the stack's ports: named as `make run` was given them ...
    added = subprocess.run(
        ["make", "--no-print-directory", "user", "ROLE=coordinator", f"EMAIL={coordinator}"],
        cwd=ROOT,
        env=command_env(launcher, EMBEDDED_MONGO_PORT=str(launcher.ports["mongo"])),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert added.returncode == 0, added.stderr
    assert "receives the program's mails" in added.stdout
    # ... or not named at all: the stack file says where it runs.
    listed = subprocess.run(
        [sys.executable, "-m", "services.portal", "user", "list"],
        cwd=ROOT,
        env=command_env(launcher),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0 and coordinator in listed.stdout, listed.stderr

    secret = (launcher.data_dir / "embedded.env").read_text().split("JWT_SECRET=", 1)[1].strip()
    urls = {
        f"{n.upper()}_URL": f"http://127.0.0.1:{launcher.ports[n]}"
        for n in ("applications", "matching", "notifications")
    }
    mailbox = launcher.data_dir / "mailbox"
    api = Api(Stack(portal, {**urls, "JWT_SECRET": secret}, mailbox))

    # The season: a cohort, a company that answers the call and is approved, a position, a
    # student who applies, a round, both accept.
    year = date.today().year + 1
    cohort = f"{year}-links-{tag}"
    api.open_cohort(cohort, "第1期生")
    company_mail = f"hr-{tag}@hibikinada.example"
    company = api.approved_company(
        {
            "name_ja": f"響灘セミコンダクター{tag}株式会社",
            "name_en": f"Hibikinada Semiconductor {tag}",
            "sector": "semiconductor",
            "ward": "Wakamatsu-ku",
            "address": "2-1 Hibikino, Wakamatsu-ku, Kitakyushu",
            "contact": {"name": "山田 花子", "email": company_mail, "preferred_language": "ja"},
        }
    )
    position = api.publish_position(
        company["id"],
        {
            "cohort_id": cohort,
            "title": "Wafer inspection software",
            "track": "development_design_programming",
            "capacity": 1,
            "required_skills": ["python"],
            "paid": True,
            "start_date": f"{year}-07-01",
            "end_date": f"{year}-08-31",
            "location": "Kitakyushu Science and Research Park",
        },
    )
    student = f"stu-{tag}"
    student_mail = f"{student}@example.tw"
    api.student_applies(
        student,
        {
            "name": "林怡君",
            "email": student_mail,
            "department": "Electrical Engineering",
            "degree_program": "master",
            "graduation_year": year,
            "jlpt_level": "N2",
            "english_level": "B2",
            "skills": ["python"],
            "available_from": f"{year}-06-15",
            "available_to": f"{year}-09-15",
            "preferred_language": "zh-TW",
            "consent_to_data_use": True,
        },
        {
            "cohort_id": cohort,
            "ranked_position_ids": [position["id"]],
            "motivation": "I want to build my career in Kitakyushu.",
        },
    )
    api.close_and_run_round(cohort, pairs=1)
    (proposal,) = api.proposals(cohort)
    api.both_accept(proposal, company["id"])

    # The portal's own mail: a sign-in link for the coordinator.
    with httpx.Client(base_url=portal, timeout=30) as browser:
        form = browser.get("/sign-in").text
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form).group(1)  # type: ignore[union-attr]
        assert browser.post("/sign-in", data={"csrf_token": csrf, "email": coordinator}).is_success

    addresses = {coordinator, company_mail, student_mail}
    deadline = time.monotonic() + 120
    while True:
        seen = mails(mailbox, addresses)
        kinds = {str(m["X-Template"]) for m in seen if m["X-Template"]}
        sign_in = [m for m in seen if "/sign-in/verify?token=" in m.get_content()]
        if kinds >= KINDS and sign_in:
            break
        assert time.monotonic() < deadline, f"missing: {KINDS - kinds}, sign-in: {bool(sign_in)}"
        time.sleep(1)
    # The coordinator `make user` added gets the round summary (nobody else set an address).
    summaries = [m for m in seen if str(m["X-Template"]) == "round_completed.coordinator"]
    assert [coordinator in str(m["To"]) for m in summaries] == [True]

    opened: dict[str, list[str]] = {}
    with httpx.Client(timeout=30, follow_redirects=False) as reader:
        for message in seen:
            kind = str(message["X-Template"] or "sign_in")
            links = URL.findall(message.get_content())
            assert links, f"{kind}: no link"
            for link in links:
                assert link.startswith(f"{portal}/"), f"{kind} links to {link}, not {portal}"
                answer = reader.get(link)
                signs_in = answer.status_code == 303 and answer.headers["location"].startswith(
                    "/sign-in?next="
                )
                assert answer.status_code == 200 or signs_in, (kind, link, answer.status_code)
                opened.setdefault(kind, []).append(link)
    assert set(opened) == KINDS | {"sign_in"}

    # Without the stack, `make user` says so in one line (no traceback).
    assert launcher.interrupt() == 0
    refused = subprocess.run(
        ["make", "--no-print-directory", "user", "ROLE=coordinator", "EMAIL=late@example.org"],
        cwd=ROOT,
        env=command_env(launcher),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    mongo = f"mongodb://127.0.0.1:{launcher.ports['mongo']}"
    assert f"cannot reach the portal's MongoDB at {mongo}" in refused.stderr
    assert "make run" in refused.stderr
