"""Small helpers several role pages share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.portal import i18n
from services.portal.web import Ctx


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def local_input_to_utc(value: str) -> str | None:
    """A `datetime-local` field, read in the person's time zone, as an ISO instant."""
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        return None
    return naive.replace(tzinfo=i18n.zone()).isoformat()


def params(ctx: Ctx) -> dict[str, str]:
    return dict(ctx.request.query_params)
