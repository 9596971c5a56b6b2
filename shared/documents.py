"""Small helpers for stored documents, the same in every service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.errors import not_found
from shared.mongo import Session


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_response(doc: dict[str, Any], *, hide: tuple[str, ...] = ()) -> dict[str, Any]:
    """A stored document as an API response: `_id` becomes `id`, `hide` fields are left out."""
    return {"id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id" and k not in hide}}


async def find_or_404(
    collection: AsyncCollection[dict[str, Any]],
    what: str,
    ident: str,
    session: Session | None = None,
) -> dict[str, Any]:
    """The document with this `_id`, or a 404 that names what was looked for."""
    doc = await collection.find_one({"_id": ident}, session=session)
    if doc is None:
        raise not_found(what, ident)
    return doc
