"""The image's HEALTHCHECK: is the service in this container alive? (standard library only)

    python -m deploy.healthcheck          the service PID 1 runs (`python -m services.<name>`)
    python -m deploy.healthcheck PORT     an explicit port

Exit 0 when GET /health/live answers 200 within the timeout, 1 otherwise.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

# The services' default ports (their settings classes; a unit test keeps the two in step).
DEFAULT_PORTS = {"portal": 8000, "applications": 8001, "matching": 8002, "notifications": 8003}
TIMEOUT_SECONDS = 3.0


def service_of(cmdline: Sequence[str]) -> str | None:
    """`python -m services.matching` -> "matching" (also behind an init such as tini)."""
    for arg in cmdline:
        if arg.startswith("services."):
            return arg.split(".")[1]
    return None


def port_of(service: str, environ: Mapping[str, str]) -> int:
    return int(environ.get(f"{service.upper()}_HTTP_PORT") or DEFAULT_PORTS[service])


def alive(port: int, timeout: float = TIMEOUT_SECONDS) -> bool:
    url = f"http://127.0.0.1:{port}/health/live"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main(argv: Sequence[str]) -> int:
    if argv:
        port = int(argv[0])
    else:
        cmdline = Path("/proc/1/cmdline").read_bytes().decode().split("\0")
        service = service_of(cmdline)
        if service not in DEFAULT_PORTS:
            print(f"not a platform service: {' '.join(cmdline)}", file=sys.stderr)
            return 1
        port = port_of(service, os.environ)
    ok = alive(port)
    if not ok:
        print(f"no live answer on port {port}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
