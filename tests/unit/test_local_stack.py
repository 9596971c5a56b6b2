"""Commands beside `make run` (make user, token, dlq, analytics) read the settings the
launcher gave the services, so they reach the stack on whatever ports it runs."""

from __future__ import annotations

import stat
from pathlib import Path

from shared.local_stack import mongodb_uri, stack_settings, write_stack_file


def test_a_command_reads_the_ports_make_run_chose(tmp_path: Path) -> None:
    (tmp_path / "embedded.env").write_text("JWT_SECRET=generated-once\n")
    written = write_stack_file(
        tmp_path,
        {
            "MONGODB_URI": mongodb_uri("127.0.0.1", 27019),
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19093",
            "NOTIFICATIONS_URL": "http://127.0.0.1:9003",
            "PUBLIC_BASE_URL": "http://127.0.0.1:9000",
        },
    )
    assert stat.S_IMODE(written.stat().st_mode) == 0o600  # MONGODB_URI may hold a password
    found = stack_settings({"EMBEDDED_DATA_DIR": str(tmp_path)})
    assert found["MONGODB_URI"].startswith("mongodb://127.0.0.1:27019/")
    assert found["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19093"
    assert found["NOTIFICATIONS_URL"] == "http://127.0.0.1:9003"
    assert found["JWT_SECRET"] == "generated-once"


def test_the_commands_own_environment_wins(tmp_path: Path) -> None:
    write_stack_file(tmp_path, {"MONGODB_URI": mongodb_uri("127.0.0.1", 27019)})
    # The same EMBEDDED_* ports `make run` honours name the stack to talk to ...
    found = stack_settings(
        {
            "EMBEDDED_DATA_DIR": str(tmp_path),
            "EMBEDDED_MONGO_PORT": "27555",
            "EMBEDDED_KAFKA_PORT": "19555",
            "NOTIFICATIONS_HTTP_PORT": "9555",
        }
    )
    assert found["MONGODB_URI"] == mongodb_uri("127.0.0.1", 27555)
    assert found["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19555"
    assert found["NOTIFICATIONS_URL"] == "http://127.0.0.1:9555"
    # ... and a setting given outright is not overridden at all.
    outright = {"EMBEDDED_DATA_DIR": str(tmp_path), "MONGODB_URI": "mongodb://db:27017/"}
    assert "MONGODB_URI" not in stack_settings(outright)


def test_without_a_stack_file_the_embedded_ports_still_count(tmp_path: Path) -> None:
    found = stack_settings({"EMBEDDED_DATA_DIR": str(tmp_path), "EMBEDDED_MONGO_PORT": "27600"})
    assert found == {"MONGODB_URI": mongodb_uri("127.0.0.1", 27600)}
    assert stack_settings({"EMBEDDED_DATA_DIR": str(tmp_path)}) == {}
