"""Kafka and MongoDB in containers (testcontainers), for machines with a Docker engine.

Used by the test session when no external servers are named and a Docker engine answers;
TESTS_CONTAINERS=never forces the embedded servers. MongoDB runs as a one-node replica set,
since the services need transactions.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"  # Apache Kafka, run in KRaft mode
MONGO_IMAGE = "mongo:8.0"


def docker_engine_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


class ContainerServers:
    def __init__(self) -> None:
        self.kafka: Any = None
        self.mongo: Any = None

    def start(self) -> tuple[str, str]:
        """Start both; returns (Kafka bootstrap servers, MongoDB URI)."""
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import LogMessageWaitStrategy

        try:
            self.kafka = KafkaContainer(KAFKA_IMAGE).with_kraft().start(timeout=120)
            self.mongo = (
                DockerContainer(MONGO_IMAGE)
                .with_command("--replSet rs0 --bind_ip_all")
                .with_exposed_ports(27017)
                .waiting_for(
                    LogMessageWaitStrategy(re.compile("waiting for connections", re.IGNORECASE))
                )
                .start()
            )
            initiate = "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]})"
            result = self.mongo.exec(["mongosh", "--quiet", "--eval", initiate])
            if result.exit_code != 0:
                raise RuntimeError(f"rs.initiate failed: {result.output!r}")
            host = self.mongo.get_container_host_ip()
            port = self.mongo.get_exposed_port(27017)
            # directConnection: the member's advertised name is the container's own.
            uri = f"mongodb://{host}:{port}/?directConnection=true"
            self._wait_for_primary(uri)
            return self.kafka.get_bootstrap_server(), uri
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _wait_for_primary(uri: str, timeout: float = 60) -> None:
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=2000)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    if client.admin.command("hello").get("isWritablePrimary"):
                        return
                except Exception:
                    pass
                time.sleep(0.5)
            raise RuntimeError("MongoDB container did not become primary")
        finally:
            client.close()

    def stop(self) -> None:
        for container in (self.mongo, self.kafka):
            if container is not None:
                with contextlib.suppress(Exception):
                    container.stop()
        self.kafka = self.mongo = None
