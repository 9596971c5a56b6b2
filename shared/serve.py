"""Entry point helper: run a service's HTTP app (and with it its Kafka side) under uvicorn."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI

from shared.logs import configure_logging
from shared.settings import CommonSettings, MissingSecretError


def serve(app: FastAPI | Callable[[Any], FastAPI], settings: CommonSettings, port: int) -> None:
    """Serve `app`, or the app `create_app(settings)` builds. A service that is not configured
    to run (no JWT_SECRET) exits at once with the reason instead of answering 500 to everyone."""
    configure_logging(settings.log_level, settings.log_json)
    try:
        if not isinstance(app, FastAPI):
            app = app(settings)
        settings.require_jwt_secret()
    except MissingSecretError as exc:
        print(f"not starting: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    uvicorn.run(app, port=port, **server_options(settings))


def server_options(settings: CommonSettings) -> dict[str, Any]:
    """How uvicorn serves a service (tests serve the same way)."""
    # server_header=False: no `Server: uvicorn` banner telling what to attack. The client's
    # address and scheme come from X-Forwarded-* only when the proxy is one we trust.
    return {
        "host": settings.http_host,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }
