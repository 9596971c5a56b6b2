"""A service on a real HTTP server (uvicorn, as `python -m services.<name>` runs it) in a thread
of its own, so that tests see what a client on the network sees: headers, body limits, and
latency while another request is being refused. Tests that call it synchronously (schemathesis
uses `requests`) do not block the server's event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from deploy.embedded.processes import free_port


@contextmanager
def served(create: Callable[[], FastAPI], timeout: float = 60.0) -> Iterator[str]:
    """Build the app in the server's thread (its clients bind to that event loop), serve it on
    a free port of 127.0.0.1 with the production options, and give its base URL."""
    port = free_port()
    holder: dict[str, uvicorn.Server] = {}
    failure: list[BaseException] = []

    def run() -> None:
        try:
            config = uvicorn.Config(
                create(),
                host="127.0.0.1",
                port=port,
                log_config=None,
                access_log=False,
                server_header=False,  # as shared/serve.py
            )
            server = uvicorn.Server(config)
            holder["server"] = server
            asyncio.run(server.serve())
        except BaseException as exc:  # reported to the test below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"served-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not (holder.get("server") and holder["server"].started):
        if failure or not thread.is_alive():
            raise RuntimeError(f"the service did not start: {failure!r}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service did not start within {timeout} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        holder["server"].should_exit = True
        thread.join(timeout=30)
