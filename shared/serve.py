"""Entry point helper: run a service's HTTP app (and with it its Kafka side) under uvicorn."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from shared.logs import configure_logging
from shared.settings import CommonSettings


def serve(app: FastAPI, settings: CommonSettings, port: int) -> None:
    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(app, host=settings.http_host, port=port, log_config=None, access_log=False)
