"""Who the applicants of a cohort are, asked of the applications service (the only holder of
names and universities) for one report, with the reader's own token.

The matching service never stores what it learns here: names stay off its database and off
the public stream. Asking with the reader's token leaves the decision "whom may this reader
see" with the service that knows whose students they are: a university office is told about
its own students only, and the report then holds rows about them alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from shared.errors import DomainError

log = logging.getLogger(__name__)

Doc = dict[str, Any]


class ApplicantDirectory:
    def __init__(self, base_url: str, timeout: float = 10.0, attempts: int = 3) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.attempts = attempts

    async def students(self, cohort_id: str, authorization: str) -> dict[str, Doc]:
        """Student id -> name, university, studies and applications, as this reader may
        see them. 404 when the applications service does not know the cohort; the reader's
        own 401/403 pass through; 503 when it does not answer."""
        url = f"{self.base_url}/cohorts/{cohort_id}/students"
        last: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.get(url, headers={"Authorization": authorization})
            except httpx.TransportError as exc:
                last = exc
                log.warning(
                    "applications service did not answer",
                    extra={"url": url, "attempt": attempt, "error": str(exc)},
                )
                await asyncio.sleep(0.3 * attempt)
                continue
            if response.status_code >= 500:
                last = RuntimeError(f"HTTP {response.status_code}")
                await asyncio.sleep(0.3 * attempt)
                continue
            if response.status_code != 200:
                raise DomainError(_reason(response), status_code=response.status_code)
            return {s["id"]: s for s in response.json()}
        raise DomainError(
            "the applications service, which holds the applicants' names, is not answering "
            f"({last}); the report needs them: try again in a minute",
            status_code=503,
        )


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json()["detail"][0]["reason"])
    except (ValueError, KeyError, IndexError, TypeError):
        return f"the applications service answered HTTP {response.status_code}"
