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
    # server_header=False: no `Server: uvicorn` banner telling what to attack.
    uvicorn.run(
        app,
        host=settings.http_host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
