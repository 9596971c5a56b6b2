"""IANA time-zone names as a validated string type (deadlines are shown in each party's zone)."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Asia/Taipei or Asia/Tokyo"
        ) from exc
    return value


TimeZoneName = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["Asia/Taipei", "Asia/Tokyo"]),
    AfterValidator(_known_zone),
]
