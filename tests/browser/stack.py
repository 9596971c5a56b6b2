"""The four services as real processes (as `make run` starts them) on the session's Kafka,
MongoDB and SMTP sink, for the browser tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from deploy.embedded.processes import Child, free_port, spawn
from tests.infra import Infra

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("applications", "matching", "notifications")


@dataclass
class Stack:
    portal_url: str
    env: dict[str, str]
    mailbox: Path
    children: list[Child] = field(default_factory=list)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    def add_user(self, role: str, email: str, university: str | None = None) -> str:
        """What the operator does: `python -m services.portal user add` (make user)."""
        extra = ["--university", university] if university else []
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.portal",
                "user",
                "add",
                "--role",
                role,
                "--email",
                email,
                *extra,
            ],
            cwd=ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


def wait_ready(child: Child, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited at start:\n{child.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                if json.loads(resp.read()).get("ready"):
                    return
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise RuntimeError(f"{child.name} not ready after {timeout}s: {last}\n{child.log_tail()}")


def start_stack(infra: Infra, logs: Path) -> Stack:
    assert infra.mailbox is not None, "the browser tests read sign-in links from the SMTP sink"
    tag = uuid.uuid4().hex[:8]
    ports = {name: free_port() for name in (*SERVICES, "portal")}
    base = "http://127.0.0.1"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "MONGODB_URI": infra.mongodb_uri,
        "SMTP_HOST": infra.smtp_host,
        "SMTP_PORT": str(infra.smtp_port),
        "JWT_SECRET": infra.jwt_secret,
        "HTTP_HOST": "127.0.0.1",
        "KAFKA_TOPIC_PREFIX": f"b{tag}.",
        "KAFKA_GROUP_PREFIX": f"b{tag}.",
        "KAFKA_TOPIC_PARTITIONS": "2",
        "OUTBOX_POLL_SECONDS": "0.2",
        "LOG_JSON": "true",
        "DELIVERY_POLL_SECONDS": "0.5",
        "PUBLIC_BASE_URL": f"{base}:{ports['portal']}",
        "PORTAL_DATABASE": f"b{tag}_portal",
        # Every person of these tests signs in from 127.0.0.1, more often than the per-client
        # limit allows one real client (that limit is tested in test_portal_sign_in.py).
        "SIGN_IN_LIMIT_PER_CLIENT": "1000",
        **{f"{n.upper()}_DATABASE": f"b{tag}_{n}" for n in SERVICES},
        **{f"{n.upper()}_HTTP_PORT": str(p) for n, p in ports.items()},
        **{f"{n.upper()}_URL": f"{base}:{ports[n]}" for n in SERVICES},
    }
    stack = Stack(portal_url=f"{base}:{ports['portal']}", env=env, mailbox=infra.mailbox)
    try:
        for name in (*SERVICES, "portal"):
            child = spawn(
                name, [sys.executable, "-m", f"services.{name}"], logs / f"{name}.log", env=env
            )
            stack.children.append(child)
        for child in stack.children:
            wait_ready(child, f"{base}:{ports[child.name]}/health/ready")
    except BaseException:
        stack.stop()
        raise
    return stack
