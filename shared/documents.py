"""Small helpers for stored documents, the same in every service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_response(doc: dict[str, Any], *, hide: tuple[str, ...] = ()) -> dict[str, Any]:
    """A stored document as an API response: `_id` becomes `id`, `hide` fields are left out."""
    return {"id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id" and k not in hide}}
