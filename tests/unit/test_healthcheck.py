"""The image's HEALTHCHECK script finds the service's port and asks it whether it is alive."""

from __future__ import annotations

import importlib
import inspect
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from deploy import healthcheck
from shared.settings import CommonSettings


def settings_class(service: str) -> type[CommonSettings]:
    for module_name in (f"services.{service}.settings", f"services.{service}.app"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, CommonSettings) and "http_port" in cls.model_fields:
                return cls
    pytest.skip(f"services.{service} is not in this checkout")


@pytest.mark.parametrize("service", sorted(healthcheck.DEFAULT_PORTS))
def test_default_ports_match_the_services_settings(service: str) -> None:
    field = settings_class(service).model_fields["http_port"]
    assert field.default == healthcheck.DEFAULT_PORTS[service]
    assert field.alias == f"{service.upper()}_HTTP_PORT"


def test_service_is_read_from_the_command_line() -> None:
    assert healthcheck.service_of(["python", "-m", "services.matching"]) == "matching"
    assert healthcheck.service_of(["/sbin/docker-init", "--", "python", "-m", "services.portal"])
    assert healthcheck.service_of(["python3"]) is None
    assert healthcheck.port_of("notifications", {}) == 8003
    assert healthcheck.port_of("notifications", {"NOTIFICATIONS_HTTP_PORT": "9003"}) == 9003


class Handler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health/live" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_alive_when_the_service_answers_200(server: HTTPServer) -> None:
    port = server.server_address[1]
    Handler.status = 200
    assert healthcheck.main([str(port)]) == 0
    Handler.status = 503
    assert healthcheck.main([str(port)]) == 1


def test_not_alive_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert not healthcheck.alive(port, timeout=1)
