"""The settings of the stack `make run` started, for the commands run beside it (`make user`,
`make token`, `make dlq`, `make analytics`, `python -m services.portal user ...`).

`make run` decides its ports from EMBEDDED_* and *_HTTP_PORT (deploy/embedded) and writes what
it gave the services to <EMBEDDED_DATA_DIR>/stack.env (default .data/); the generated
JWT_SECRET stays in embedded.env beside it. A command reads both, so it reaches the stack
on whatever ports it runs. The environment still wins: an EMBEDDED_* port set for the command
itself is used (it names the stack to talk to), and so is any setting set outright
(MONGODB_URI, KAFKA_BOOTSTRAP_SERVERS, ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SECRET_FILE = "embedded.env"
STACK_FILE = "stack.env"
HOST = "127.0.0.1"
# The launcher's HTTP ports (deploy/embedded SERVICES); *_HTTP_PORT changes them.
SERVICE_PORTS = {"portal": 8000, "applications": 8001, "matching": 8002, "notifications": 8003}


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    return Path((environ or os.environ).get("EMBEDDED_DATA_DIR", ".data"))


def mongodb_uri(host: str, port: int) -> str:
    # retryWrites=false: see CommonSettings.mongodb_uri.
    return f"mongodb://{host}:{port}/?replicaSet=secantus&retryWrites=false"


def kafka_bootstrap(host: str, port: int) -> str:
    return f"{host}:{port}"


def write_stack_file(directory: Path, settings: Mapping[str, str]) -> Path:
    """What the launcher gave the services, for the commands run beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STACK_FILE
    lines = ["# written by `make run` at each start; read by make user/token/dlq/analytics"]
    lines += [f"{k}={v}" for k, v in sorted(settings.items())]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # MONGODB_URI may carry credentials
    return path


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def stack_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings a command beside `make run` needs that its environment does not set."""
    env = os.environ if environ is None else environ
    directory = data_dir(env)
    found = {**read_env_file(directory / SECRET_FILE), **read_env_file(directory / STACK_FILE)}
    host = env.get("EMBEDDED_HOST", HOST)
    # Ports set for this command name the stack it means, over what the file says.
    if "EMBEDDED_MONGO_PORT" in env:
        found["MONGODB_URI"] = mongodb_uri(host, int(env["EMBEDDED_MONGO_PORT"]))
    if "EMBEDDED_KAFKA_PORT" in env:
        found["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap(host, int(env["EMBEDDED_KAFKA_PORT"]))
    if "EMBEDDED_SMTP_PORT" in env:
        found["SMTP_PORT"] = env["EMBEDDED_SMTP_PORT"]
    for name in SERVICE_PORTS:
        port = env.get(f"{name.upper()}_HTTP_PORT")
        if port and name != "portal":
            found[f"{name.upper()}_URL"] = f"http://{host}:{port}"
    return {k: v for k, v in found.items() if k not in env}


def use_local_stack() -> None:
    """Fill in, for this process, what `make run` decided and the environment does not say."""
    for name, value in stack_settings().items():
        os.environ.setdefault(name, value)


def unreachable(what: str, where: str) -> str:
    """The one line a command prints when the stack it needs does not answer."""
    return (
        f"cannot reach {what} at {where}: is the platform running? Start it with `make run` "
        "(same EMBEDDED_* ports and EMBEDDED_DATA_DIR), or set the address "
        "(MONGODB_URI, KAFKA_BOOTSTRAP_SERVERS) to the stack you mean."
    )
