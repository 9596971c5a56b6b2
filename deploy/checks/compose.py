"""docker-compose.yml: valid against the Compose Specification's JSON Schema (vendored in
schemas/, see its README) after Compose's variable interpolation, and the platform's rules:
one image built once, health checks that gate start-up, ports on 127.0.0.1 by default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
PLATFORM = ("applications", "matching", "notifications", "portal")
# The services that write links people follow (the portal's sign-in mails, every notification).
LINK_WRITERS = ("portal", "notifications")
# What `docker compose up` would see with only the one required variable set.
ENVIRONMENT = {"JWT_SECRET": "x" * 64}

# Compose's interpolation syntax ($$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default},
# ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt}); no Python library implements it,
# and the schema must see the values Compose would.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.S)


class InterpolationError(ValueError):
    pass


def interpolate_text(text: str, environ: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return environ.get(match["named"], "")
        braced = _BRACED.match(match["braced"])
        if braced is None or "${" in (braced["arg"] or ""):
            raise InterpolationError(f"unsupported interpolation ${{{match['braced']}}}")
        name, op, arg = braced["name"], braced["op"], braced["arg"] or ""
        value = environ.get(name)
        is_set = value is not None
        is_full = bool(value)
        if op in (":-", "-"):
            keep = is_full if op == ":-" else is_set
            return value if keep and value is not None else arg
        if op in (":?", "?"):
            if not (is_full if op == ":?" else is_set):
                raise InterpolationError(f"{name}: {arg}")
            return value or ""
        if op in (":+", "+"):
            return arg if (is_full if op == ":+" else is_set) else ""
        return value or ""

    return _VARIABLE.sub(substitute, text)


def interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate_text(value, environ)
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    return value


def check(compose_file: Path) -> tuple[list[str], dict[str, Any]]:
    raw = yaml.safe_load(compose_file.read_text())
    problems: list[str] = []
    try:
        interpolate(raw, {})
        problems.append("`docker compose up` starts without JWT_SECRET set")
    except InterpolationError as missing:
        if "JWT_SECRET" not in str(missing):
            problems.append(f"without JWT_SECRET: {missing}")
    document = interpolate(raw, ENVIRONMENT)
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        problems.append(f"compose-spec: {where}: {error.message}")
    problems.extend(rules(document, raw))
    return problems, document


def rules(document: dict[str, Any], raw: dict[str, Any]) -> Iterator[str]:
    services: dict[str, Any] = document.get("services", {})
    for name in (*PLATFORM, "kafka", "mongodb", "mailpit"):
        if name not in services:
            yield f"service {name} is missing"
    builders = [n for n, s in services.items() if "build" in s]
    if len(builders) != 1:
        yield f"exactly one service should build the image, not {builders}"
    images = {services[n].get("image") for n in PLATFORM if n in services}
    if len(images) != 1 or None in images:
        yield f"the platform services should share one image, not {images}"
    for name in PLATFORM:
        service = services.get(name, {})
        if "build" not in service and service.get("pull_policy") != "never":
            yield f"{name}: reuses the built image but may try to pull it (pull_policy: never)"
        if not service.get("read_only"):
            yield f"{name}: root filesystem writable"
        if "ALL" not in service.get("cap_drop", []):
            yield f"{name}: capabilities not dropped"
        if "no-new-privileges:true" not in service.get("security_opt", []):
            yield f"{name}: may gain privileges"
        raw_secret = raw["services"][name].get("environment", {}).get("JWT_SECRET", "")
        if name == "portal" and not service.get("environment", {}).get("FORWARDED_ALLOW_IPS"):
            yield "portal: FORWARDED_ALLOW_IPS is not set (whose X-Forwarded-For to believe)"
        if not str(raw_secret).startswith("${JWT_SECRET"):
            yield f"{name}: JWT_SECRET is not taken from the environment"
    urls = {n: _environment(services.get(n, {})).get("PUBLIC_BASE_URL") for n in LINK_WRITERS}
    for name, url in urls.items():
        if not url:
            yield f"{name}: writes links but gets no PUBLIC_BASE_URL (they would be wrong)"
    if len({u for u in urls.values() if u}) > 1:
        yield f"the services disagree on PUBLIC_BASE_URL: {urls}"
    for name, service in services.items():
        if name != "mongodb-init" and "healthcheck" not in service:
            yield f"{name}: no health check"
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            yield f"{name}: depends_on without conditions"
            continue
        for dependency, how in depends.items():
            wanted = (
                "service_completed_successfully"
                if dependency == "mongodb-init"
                else "service_healthy"
            )
            if how.get("condition") != wanted:
                yield f"{name}: depends on {dependency} without condition {wanted}"
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else _host_ip(str(port))
            if host_ip != "127.0.0.1":
                yield f"{name}: port {port} is published beyond 127.0.0.1 by default"


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either of Compose's forms (mapping or NAME=value list)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(str(item).partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items() if v is not None}


def _host_ip(short: str) -> str | None:
    """ "127.0.0.1:8000:8000" -> "127.0.0.1"; "8000:8000" -> None (all interfaces)."""
    parts = short.rsplit("/", 1)[0].split(":")
    return ":".join(parts[:-2]) if len(parts) >= 3 else None
