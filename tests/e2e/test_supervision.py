"""The launcher supervises: a service killed with `kill -9` is started again with a line that
says so, and a Kafka broker that is alive but no longer answers is restarted."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.embedded.processes import free_port
from tests.e2e.test_make_run import ROOT, Launcher

pytestmark = pytest.mark.e2e


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("the launcher runs from .venv (created by make)")
    names = ("kafka", "mongo", "smtp", "applications", "matching", "notifications")
    la = Launcher(tmp_path / "data", {n: free_port() for n in names})
    yield la
    if la.proc is not None and la.proc.poll() is None:
        la.interrupt()


def pids_where(predicate: str, environ: str | None = None) -> list[int]:
    """Processes whose command line contains `predicate` (and environment `environ`)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            env = Path(f"/proc/{entry}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if predicate in cmdline and (environ is None or environ in env.split("\0")):
            found.append(int(entry))
    return found


def wait_for_line(launcher: Launcher, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = launcher.log.read_text(errors="replace")
        if text in log:
            return log
        time.sleep(0.5)
    raise AssertionError(f"no line with {text!r} in:\n{launcher.log.read_text()[-3000:]}")


def ready(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=3) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"port {port} not ready in {timeout}s")


def test_a_killed_service_and_a_frozen_broker_are_restarted(launcher: Launcher) -> None:
    launcher.start()
    port = launcher.ports["matching"]
    (pid,) = pids_where("services.matching", f"MATCHING_HTTP_PORT={port}")
    os.kill(pid, signal.SIGKILL)
    wait_for_line(launcher, "matching exited (code -9); restarting in 1 s (restart #1)", 30)
    wait_for_line(launcher, "matching restarted (restart #1)", 30)
    ready(port, 90)

    # A broker that still runs but answers nothing (frozen) is restarted.
    broker = pids_where(str(launcher.data_dir / "kafka"))
    assert broker
    for p in broker:
        os.kill(p, signal.SIGSTOP)
    wait_for_line(launcher, "is running but does not answer; restarting it", 60)
    wait_for_line(launcher, "kafka (noida-db) restarted", 60)
    for name in ("applications", "matching", "notifications"):
        ready(launcher.ports[name], 90)
    assert launcher.interrupt() == 0
