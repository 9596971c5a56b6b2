"""Calls to the three services' HTTP APIs on behalf of the signed-in person.

Every call carries a short-lived bearer token minted for that person (role and id), so the
services apply their own rules to what the person may see and do; the portal has no more
power than the person using it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from services.portal.settings import PortalSettings
from shared.auth import Role, mint_token

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A service said no: its status and its `[{field, reason}]` details."""

    def __init__(self, status: int, details: list[dict[str, Any]]) -> None:
        super().__init__(f"{status}: {details}")
        self.status = status
        self.details = details

    def reasons(self) -> dict[str, str]:
        return {str(d.get("field") or ""): str(d.get("reason") or "") for d in self.details}


class ServiceUnavailable(Exception):
    """A service did not answer (down, starting, or too slow)."""


@dataclass
class Services:
    settings: PortalSettings
    applications: httpx.AsyncClient
    matching: httpx.AsyncClient
    notifications: httpx.AsyncClient

    @classmethod
    def create(cls, settings: PortalSettings) -> Services:
        def client(url: str) -> httpx.AsyncClient:
            # retries: a refused or timed-out connection (a service restarting) is tried
            # again; a request that reached the service is never sent twice.
            transport = httpx.AsyncHTTPTransport(retries=2)
            return httpx.AsyncClient(
                base_url=url, timeout=settings.api_timeout_seconds, transport=transport
            )

        return cls(
            settings,
            client(settings.applications_url),
            client(settings.matching_url),
            client(settings.notifications_url),
        )

    async def close(self) -> None:
        for c in (self.applications, self.matching, self.notifications):
            await c.aclose()

    def as_person(self, role: str, sub: str, university: str | None = None) -> Caller:
        return Caller(self, Role(role), sub, university)

    def anonymous(self) -> Caller:
        return Caller(self, None, None)

    def as_portal(self) -> Caller:
        """The portal itself, for the one thing no person can ask yet: whether an address
        belongs to an approved company's contact (before that person has signed in)."""
        return Caller(self, Role.COORDINATOR, "portal")


@dataclass(frozen=True)
class Download:
    content: bytes
    media_type: str
    disposition: str


@dataclass
class Caller:
    services: Services
    role: Role | None
    sub: str | None
    university: str | None = None  # a university office's own university (scopes its reads)

    def _headers(self) -> dict[str, str]:
        if self.role is None or self.sub is None:
            return {}
        ttl = timedelta(seconds=self.services.settings.api_token_seconds)
        token = mint_token(
            self.services.settings, self.role, self.sub, ttl, university=self.university
        )
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        response = await self._send(service, method, path, json=json, params=params)
        return response.json()

    async def download(self, service: str, path: str, **params: Any) -> Download:
        """A file the service serves (a report): its bytes and how it is to be saved."""
        clean = {k: v for k, v in params.items() if v is not None}
        response = await self._send(service, "GET", path, params=clean)
        return Download(
            content=response.content,
            media_type=response.headers.get("content-type", "application/octet-stream"),
            disposition=response.headers.get("content-disposition", "attachment"),
        )

    async def _send(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        client: httpx.AsyncClient = getattr(self.services, service)
        try:
            response = await client.request(
                method, path, json=json, params=params, headers=self._headers()
            )
        except httpx.HTTPError as exc:
            log.warning("service call failed", extra={"service": service, "path": path})
            raise ServiceUnavailable(service) from exc
        if response.status_code >= 500:
            raise ServiceUnavailable(service)
        if response.status_code >= 400:
            try:
                details = response.json().get("detail", [])
            except ValueError:
                details = []
            if not isinstance(details, list):
                details = [{"field": None, "reason": str(details)}]
            raise ApiError(response.status_code, details)
        return response

    async def get(self, service: str, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return await self.call(service, "GET", path, params=clean)

    async def post(self, service: str, path: str, json: Any = None) -> Any:
        return await self.call(service, "POST", path, json=json)

    async def put(self, service: str, path: str, json: Any) -> Any:
        return await self.call(service, "PUT", path, json=json)

    async def delete(self, service: str, path: str) -> Any:
        return await self.call(service, "DELETE", path)
