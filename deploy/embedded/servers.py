"""The embedded Kafka, MongoDB and SMTP servers."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.embedded.processes import Child, spawn, wait_for_port
from shared import local_stack

BIN = Path(sys.executable).parent


@dataclass
class EmbeddedServers:
    """Starts whichever of the three servers are wanted; `stop()` stops what it started."""

    data_dir: Path
    host: str = "127.0.0.1"
    kafka_port: int = 19092
    mongo_port: int = 27018
    smtp_port: int = 2525
    kafka: bool = True
    mongo: bool = True
    smtp: bool = True
    mongo_in_memory: bool = False
    children: list[Child] = field(default_factory=list)

    @property
    def kafka_bootstrap(self) -> str:
        return local_stack.kafka_bootstrap(self.host, self.kafka_port)

    @property
    def mongodb_uri(self) -> str:
        return local_stack.mongodb_uri(self.host, self.mongo_port)

    @property
    def mailbox(self) -> Path:
        return self.data_dir / "mailbox"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def start(self) -> None:
        try:
            if self.kafka:
                self.start_kafka()
            if self.mongo:
                self.start_mongo()
            if self.smtp:
                self.start_smtp()
        except BaseException:
            self.stop()
            raise

    def start_kafka(self) -> Child:
        child = spawn(
            "kafka (noida-db)",
            [
                str(BIN / "noida-db"),
                "start",
                "--only",
                "kafka",
                "--host",
                self.host,
                "--kafka-port",
                str(self.kafka_port),
                "--data-dir",
                str(self.data_dir / "kafka"),
            ],
            self.logs / "kafka.log",
        )
        self.children.append(child)
        wait_for_port(child, self.host, self.kafka_port)
        return child

    def start_mongo(self) -> Child:
        storage = ":memory:" if self.mongo_in_memory else str(self.data_dir / "mongodb")
        argv = [
            str(BIN / "secantusd-py"),
            "--host",
            self.host,
            "--port",
            str(self.mongo_port),
            "--storage-path",
            storage,
            "--log-level",
            "WARNING",
        ]
        if not self.mongo_in_memory:
            argv.append("--sync-on-commit")  # a crash loses no committed write
        child = spawn("mongodb (SecantusDB)", argv, self.logs / "mongodb.log")
        self.children.append(child)
        wait_for_port(child, self.host, self.mongo_port)
        return child

    def start_smtp(self) -> Child:
        child = spawn(
            "smtp sink (aiosmtpd)",
            [
                sys.executable,
                "-m",
                "deploy.embedded.smtp_sink",
                "--host",
                self.host,
                "--port",
                str(self.smtp_port),
                "--mailbox",
                str(self.mailbox),
            ],
            self.logs / "smtp.log",
        )
        self.children.append(child)
        wait_for_port(child, self.host, self.smtp_port)
        return child

    def stop_smtp(self) -> None:
        """Stop only the SMTP sink (to simulate a mail outage); `start_smtp()` brings it back."""
        for child in [c for c in self.children if c.name.startswith("smtp")]:
            child.stop()
            self.children.remove(child)

    def child(self, kind: str) -> Child:
        """The running child of `kind` ("kafka", "mongodb" or "smtp")."""
        return next(c for c in self.children if c.name.startswith(kind))

    def restarter(self, kind: str) -> Callable[[], Child]:
        """A function that stops what is left of `kind` and starts it again (same port, same
        data): what the launcher's supervisor calls."""
        start = {"kafka": self.start_kafka, "mongodb": self.start_mongo, "smtp": self.start_smtp}[
            kind
        ]

        def again() -> Child:
            for old in [c for c in self.children if c.name.startswith(kind)]:
                old.stop()
                self.children.remove(old)
            return start()

        return again

    def kill(self, kind: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig` to a server's whole process group and wait until it is gone (for
        fault-injection tests: SIGKILL is a crash, SIGTERM an orderly stop)."""
        child = self.child(kind)
        child.stop(signal_first=sig)
        self.children.remove(child)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
