"""CloudEvents 1.0 structured-mode JSON envelope around a typed payload."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shared.bounds import Id, Moment
from shared.events.catalog import CATALOG, EventData, event_type_of

T = TypeVar("T", bound=EventData)

TYPE_PREFIX = "jp.kitakyushu.internship."
SCHEMA_URN = "urn:kitakyushu-internship:schema:{name}:v{major}"


class CloudEvent(BaseModel, Generic[T]):
    """A CloudEvents 1.0 envelope. `type` is `jp.kitakyushu.internship.<name>.v<major>`."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: str = Field(max_length=200)
    type: str = Field(max_length=200)
    time: Moment
    subject: Id = Field(description="The aggregate id the event is about (also the Kafka key).")
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str = Field(max_length=200)
    data: T

    @property
    def name(self) -> str:
        """The catalog name (and topic), e.g. `application-submitted`."""
        return self.type.removeprefix(TYPE_PREFIX).rsplit(".v", 1)[0]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def make_event(data: EventData, *, source: str, subject: str) -> CloudEvent[Any]:
    """Wrap `data` in an envelope with a fresh id and the current time."""
    name = event_type_of(type(data))
    major = type(data).schema_major
    envelope: Any = CloudEvent[type(data)]  # type: ignore[misc]
    return envelope(
        id=uuid.uuid4(),
        source=source,
        type=f"{TYPE_PREFIX}{name}.v{major}",
        time=datetime.now(UTC),
        subject=subject,
        dataschema=SCHEMA_URN.format(name=name, major=major),
        data=data,
    )


def parse_event(raw: bytes | str, expected: str | None = None) -> CloudEvent[Any]:
    """Parse and validate an envelope and its payload against the catalog.

    Raises `ValueError` (pydantic's `ValidationError` included) with a readable reason.
    """
    head = CloudEvent[Any].model_validate_json(raw)
    name = head.name
    if expected is not None and name != expected:
        raise ValueError(f"event type {head.type!r} does not belong on topic {expected!r}")
    model = CATALOG.get(name)
    if model is None:
        raise ValueError(f"unknown event type {head.type!r}")
    if not head.type.endswith(f".v{model.schema_major}"):
        raise ValueError(f"unsupported major version in {head.type!r}")
    return CloudEvent[model].model_validate_json(raw)  # type: ignore[valid-type]
