"""Start and stop child processes by process group, and wait for their ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0, signal_first: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM the whole process group, SIGKILL what lingers. Waits for every member, not
        only the leader: wrappers such as `noida-db` start the real server as a child, which
        may still be saving its data when the wrapper has exited."""
        for sig, wait in ((signal_first, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
                os.killpg(self.pid, signal.SIGCONT)  # a frozen (stopped) process gets it too
            except ProcessLookupError:
                break
            if self._group_gone_within(wait):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=1)

    def _group_gone_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.popen.poll()  # reap the leader, so it does not linger as a zombie
            try:
                os.killpg(self.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False


def spawn(name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> Child:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("ab")
    popen = subprocess.Popen(
        argv,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,  # its own process group, so stop() reaches its children
    )
    log_file.close()
    return Child(name, popen, log_path)


def wait_for_port(child: Child, host: str, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited at start:\n{child.log_tail()}")
        if port_open(host, port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not listen on {host}:{port} in {timeout}s")
