"""`make run` as a user runs it: the launcher starts the embedded stack and the three
services as processes, the README's curl example works as printed, Ctrl-C stops everything,
and a second start keeps the data."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from deploy.embedded.processes import free_port, port_open

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def readme_demo() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- readme-demo:start -->")[1].split("<!-- readme-demo:end -->")[0]
    return block.replace("```bash", "").replace("```", "")


class Launcher:
    def __init__(self, data_dir: Path, ports: dict[str, int]) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.log = data_dir / "launcher.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        env = {
            **os.environ,
            "EMBEDDED_DATA_DIR": str(self.data_dir),
            "EMBEDDED_KAFKA_PORT": str(self.ports["kafka"]),
            "EMBEDDED_MONGO_PORT": str(self.ports["mongo"]),
            "EMBEDDED_SMTP_PORT": str(self.ports["smtp"]),
            "APPLICATIONS_HTTP_PORT": str(self.ports["applications"]),
            "MATCHING_HTTP_PORT": str(self.ports["matching"]),
            "NOTIFICATIONS_HTTP_PORT": str(self.ports["notifications"]),
            "PORTAL_HTTP_PORT": str(self.ports["portal"]),
        }
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI", "SMTP_HOST", "JWT_SECRET"):
            env.pop(name, None)  # exercise the embedded default, as on a fresh machine
        self.data_dir.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "deploy.embedded"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:].decode(errors="replace")
            if "is running" in text:
                return text
            assert self.proc.poll() is None, text
            time.sleep(0.5)
        raise AssertionError(f"launcher not ready:\n{self.log.read_text()}")

    def interrupt(self) -> int:
        """What Ctrl-C does."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def launcher(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("the README example uses .venv/bin/python (created by make)")
    names = ("kafka", "mongo", "smtp", "applications", "matching", "notifications", "portal")
    la = Launcher(tmp_path / "data", {n: free_port() for n in names})
    yield la
    if la.proc is not None and la.proc.poll() is None:
        la.interrupt()


def test_make_run_readme_example_ctrl_c_and_restart(launcher: Launcher) -> None:
    banner = launcher.start()
    # The portal's address comes first: it is where people start.
    portal = f"http://127.0.0.1:{launcher.ports['portal']}/"
    assert banner.index(portal) < banner.index(f":{launcher.ports['applications']}/docs")
    with urllib.request.urlopen(portal, timeout=10) as r:
        assert "Kitakyushu" in r.read().decode()
    for name in ("applications", "matching", "notifications"):
        port = launcher.ports[name]
        assert f"http://127.0.0.1:{port}/docs" in banner
        assert f"http://127.0.0.1:{port}/asyncapi.json" in banner
    assert f"127.0.0.1:{launcher.ports['kafka']}" in banner
    token = re.search(r"export TOKEN=(\S+)", banner).group(1)  # type: ignore[union-attr]
    apps = f"http://127.0.0.1:{launcher.ports['applications']}"

    def run_demo() -> dict[str, object]:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", readme_demo()],
            cwd=ROOT,
            env={
                **{k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "COHORT")},
                "TOKEN": token,
                "APPLICATIONS_URL": apps,
                "EMBEDDED_DATA_DIR": str(launcher.data_dir),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    application = run_demo()
    assert application["state"] == "submitted"
    assert application["cohort_id"] == "2026-summer"
    assert application["allowed_actions"] == ["edit", "withdraw"]
    # The README says the block runs again on the same data: a second run works too.
    again = run_demo()
    assert again["state"] == "submitted" and again["id"] != application["id"]

    # The student's confirmation reaches the mailbox, in Traditional Chinese.
    mailbox = launcher.data_dir / "mailbox"
    deadline = time.monotonic() + 60
    mails: list[email.message.EmailMessage] = []
    while time.monotonic() < deadline and not mails:
        mails = [
            m
            for m in (
                email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in sorted(mailbox.glob("*.eml"))
            )
            if "yijun@example.tw" in str(m["To"])
        ]
        time.sleep(0.5)
    assert mails, "no confirmation e-mail"
    assert str(mails[0]["Content-Language"]) == "zh-TW"
    assert "已收到您的申請" in str(mails[0]["Subject"])

    # AsyncAPI documents are served from the code.
    with urllib.request.urlopen(f"{apps}/asyncapi.json", timeout=10) as r:
        spec = json.loads(r.read())
    assert any("application-submitted" in c for c in json.dumps(spec["channels"]).split('"'))

    # The cohort report: matching asks the applications service for the names (the launcher
    # tells it where), and `make analytics` computes the KPIs from the public stream.
    matching = f"http://127.0.0.1:{launcher.ports['matching']}"
    request = urllib.request.Request(
        f"{matching}/cohorts/2026-summer/report/applicants.csv?lang=en",
        headers={"Authorization": f"Bearer {token}"},
    )
    # The report is built from the matching service's facts, which arrive by event: the
    # second run's application may still be on its way.
    deadline = time.monotonic() + 60
    while True:
        with urllib.request.urlopen(request, timeout=30) as r:
            report = r.read().decode("utf-8-sig")
        if report.count("林怡君") >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert report.count("林怡君") == 2  # the demo's student, once per run
    parquet = launcher.data_dir / "analytics-parquet"
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "analytics",
            f"ARGS=--cohort 2026-summer --parquet {parquet}",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{launcher.ports['kafka']}",
            "EMBEDDED_DATA_DIR": str(launcher.data_dir),
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "Cohort 2026-summer" in result.stdout
    assert re.search(r"^  Applicants\s+2$", result.stdout, re.MULTILINE), result.stdout
    assert (launcher.data_dir / "analytics.duckdb").exists()
    assert list((parquet / "type=application-submitted").glob("*.parquet")), result.stderr

    # Ctrl-C stops everything: the launcher exits cleanly and every port closes.
    assert launcher.interrupt() == 0
    for name, port in launcher.ports.items():
        assert not port_open("127.0.0.1", port), f"{name} still listens on {port}"

    # A second start keeps the data (and the generated JWT secret).
    launcher.start()
    request = urllib.request.Request(
        f"{apps}/cohorts/2026-summer", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        assert json.loads(r.read())["state"] == "open"
    assert launcher.interrupt() == 0
