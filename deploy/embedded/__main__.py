"""`make run`: the embedded stack plus every service, each as its own process.

Ctrl-C stops everything. Data lives under .data/ and survives restarts. Set
KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI or SMTP_HOST to use servers that already run; then the
matching embedded server is not started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.embedded.processes import Child, spawn
from deploy.embedded.servers import EmbeddedServers
from deploy.embedded.supervisor import Supervised, Supervisor, kafka_serves
from shared.auth import Role, mint_token
from shared.local_stack import write_stack_file
from shared.settings import CommonSettings


class LauncherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMBEDDED_", extra="ignore")

    data_dir: Path = Path(".data")
    host: str = "127.0.0.1"
    kafka_port: int = 19092
    mongo_port: int = 27018
    smtp_port: int = 2525
    ready_timeout_seconds: float = Field(default=90, gt=0)


SERVICES = {"applications": 8001, "matching": 8002, "notifications": 8003}
PORTAL = {"portal": 8000}  # the web front end: started after the services it calls


def service_port(name: str) -> int:
    return int(os.environ.get(f"{name.upper()}_HTTP_PORT", {**SERVICES, **PORTAL}[name]))


def jwt_secret(data_dir: Path) -> str:
    """JWT_SECRET from the environment, else one generated once and kept in .data/."""
    if os.environ.get("JWT_SECRET"):
        return os.environ["JWT_SECRET"]
    env_file = data_dir / "embedded.env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("JWT_SECRET="):
                return line.split("=", 1)[1]
    secret = secrets.token_urlsafe(48)
    data_dir.mkdir(parents=True, exist_ok=True)
    env_file.write_text(f"JWT_SECRET={secret}\n")
    env_file.chmod(0o600)
    return secret


def wait_ready(child: Child, url: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited at start:\n{child.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise RuntimeError(f"{child.name} not ready after {timeout}s: {last}")


def main() -> int:
    conf = LauncherSettings()
    data_dir = conf.data_dir.resolve()
    servers = EmbeddedServers(
        data_dir=data_dir,
        host=conf.host,
        kafka_port=conf.kafka_port,
        mongo_port=conf.mongo_port,
        smtp_port=conf.smtp_port,
        kafka="KAFKA_BOOTSTRAP_SERVERS" not in os.environ,
        mongo="MONGODB_URI" not in os.environ,
        smtp="SMTP_HOST" not in os.environ,
    )
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": os.environ.get(
            "KAFKA_BOOTSTRAP_SERVERS", servers.kafka_bootstrap
        ),
        "MONGODB_URI": os.environ.get("MONGODB_URI", servers.mongodb_uri),
        "SMTP_HOST": os.environ.get("SMTP_HOST", conf.host),
        "SMTP_PORT": os.environ.get("SMTP_PORT", str(conf.smtp_port)),
        "JWT_SECRET": jwt_secret(data_dir),
        "HTTP_HOST": os.environ.get("HTTP_HOST", conf.host),
        # The matching service asks it for applicants' names in cohort reports.
        "APPLICATIONS_URL": f"http://{conf.host}:{service_port('applications')}",
    }
    stopping = False

    def request_stop(_sig: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    children: list[Child] = []

    # Every service that writes a link (the portal's sign-in mails, every notification)
    # links to the portal: all of them get its address.
    portal_url = f"http://{conf.host}:{service_port('portal')}"
    env["PUBLIC_BASE_URL"] = os.environ.get("PUBLIC_BASE_URL", portal_url)
    # The portal calls the three services.
    urls = {f"{n.upper()}_URL": f"http://{conf.host}:{service_port(n)}" for n in SERVICES}
    # `make user`, `make dlq`, `make analytics` ... read what the services were given.
    write_stack_file(data_dir, {k: v for k, v in {**env, **urls}.items() if k != "JWT_SECRET"})

    def start_service(name: str) -> Child:
        extra = urls if name == "portal" else {}
        return spawn(
            name,
            [sys.executable, "-m", f"services.{name}"],
            servers.logs / f"{name}.log",
            env={**env, **extra, f"{name.upper()}_HTTP_PORT": str(service_port(name))},
        )

    supervisor = Supervisor(say=lambda line: print(line, flush=True))
    services: list[Supervised] = []
    try:
        print(f"starting the embedded stack (data in {data_dir}) ...", flush=True)
        servers.start()
        for name in SERVICES:
            child = start_service(name)
            children.append(child)
            print(f"  {name}: starting on port {service_port(name)} ...", flush=True)
        children.append(start_service("portal"))
        for child in children:
            wait_ready(
                child,
                f"http://{conf.host}:{service_port(child.name)}/health/ready",
                conf.ready_timeout_seconds,
            )
        print_banner(conf, env, servers)
        for child in list(servers.children):
            kind = child.name.split()[0]
            serves = None
            if kind == "kafka":
                # noida-db can stay alive without serving; a broker that does not answer
                # three checks in a row (15 s) is restarted.
                serves = lambda: kafka_serves(conf.host, conf.kafka_port)  # noqa: E731
            supervisor.watch(Supervised(child.name, child, servers.restarter(kind), serves))
        for child in children:
            watched = Supervised(child.name, child, lambda n=child.name: start_service(n))  # type: ignore[misc]
            supervisor.watch(watched)
            services.append(watched)
        while not stopping:
            supervisor.tick()
            time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        print(f"\nstart failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("\nstopping ...", flush=True)
        for child in reversed([s.child for s in services] or children):
            child.stop()
        servers.stop()
        print("stopped; data kept in", data_dir, flush=True)


def print_banner(conf: LauncherSettings, env: dict[str, str], servers: EmbeddedServers) -> None:
    settings = CommonSettings(jwt_secret=env["JWT_SECRET"])  # type: ignore[arg-type]
    token = mint_token(settings, Role.COORDINATOR, "coordinator", timedelta(hours=12))
    base = f"http://{conf.host}"
    lines = [
        "",
        "Kitakyushu x Taipei Tech internship platform is running.",
        "",
        f"  Open the portal: {base}:{service_port('portal')}/",
        "  (sign in as the coordinator after: make user ROLE=coordinator EMAIL=you@example.org;",
        "   the sign-in link arrives in the mailbox folder below)",
        "",
    ]
    for name in SERVICES:
        port = service_port(name)
        lines.append(
            f"  {name:<14} API docs {base}:{port}/docs   AsyncAPI {base}:{port}/asyncapi.json"
        )
    lines += [
        "",
        f"  Kafka          {env['KAFKA_BOOTSTRAP_SERVERS']}",
        f"  MongoDB        {env['MONGODB_URI']}",
        f"  SMTP           {env['SMTP_HOST']}:{env['SMTP_PORT']}"
        + (f"  (messages saved in {servers.mailbox})" if servers.smtp else ""),
        f"  logs           {servers.logs}",
        "",
        "  coordinator token (12 h):",
        f"  export TOKEN={token}",
        "  other tokens:  make token ROLE=student SUB=stu-001",
        "",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
