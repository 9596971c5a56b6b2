"""What FastStream's AsyncAPI generator cannot say from a publisher or subscriber declaration,
added to the generated document (pure: document in, document out):

- event messages travel as CloudEvents in structured mode: their content type is
  `application/cloudevents+json` (the payload schema is the envelope around the event model);
- a dead-letter channel (`<topic>.dlq`) carries the original message unchanged, with the
  reason, the consumer and the attempts in headers: the headers get their schema;
- `contacts` (and its dead letters) hold personal data: marked restricted (a `restricted` tag
  and `x-restricted: true`), for the notifications service only.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import unquote

from shared.kafka import CLOUDEVENTS_CONTENT_TYPE

RESTRICTED_TAG = {
    "name": "restricted",
    "description": "Personal data (names, e-mail addresses, languages): readable by the "
    "notifications service only; never for analysts. Compacted, keyed by `<role>:<party id>`; "
    "a null value erases the party.",
}


def _header(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "Why and where the message failed; the value is the original message, "
    "unchanged (it may be the very message that did not match the schema).",
    "required": ["dlq-error", "dlq-consumer", "dlq-attempts"],
    "properties": {
        "dlq-error": _header("The reason: the validation error or the handler's exception."),
        "dlq-consumer": _header("The consumer that gave up (a service, or its e-mail delivery)."),
        "dlq-attempts": _header("How many times it was tried.", pattern="^[0-9]+$"),
        "dlq-original-topic": _header("The topic the message was read from."),
        "dlq-original-partition": _header("Its partition.", pattern="^[0-9]+$"),
        "dlq-original-offset": _header("Its offset.", pattern="^[0-9]+$"),
        "dlq-at": _header("When it was dead-lettered (ISO 8601).", format="date-time"),
        "dlq-recipient": _header("E-mail delivery only: the party the message was for."),
        "dlq-template": _header("E-mail delivery only: the message that could not be sent."),
    },
}


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in unquote(node["$ref"]).removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def annotate(doc: dict[str, Any], *, restricted: set[str]) -> dict[str, Any]:
    """The document with content types, dead-letter headers and restricted channels marked.
    `restricted`: the addresses of channels with personal data."""
    doc = copy.deepcopy(doc)
    for channel in doc.get("channels", {}).values():
        address = channel["address"]
        base = address.removesuffix(".dlq")
        for ref in channel.get("messages", {}).values():
            message = _resolve(doc, ref)
            payload = _resolve(doc, message.get("payload", {}))
            if {"specversion", "data"} <= set(payload.get("properties", {})):
                message["contentType"] = CLOUDEVENTS_CONTENT_TYPE
            if address.endswith(".dlq"):
                message["headers"] = DEAD_LETTER_HEADERS
        if base in restricted:
            channel["x-restricted"] = True
            channel["tags"] = [*channel.get("tags", []), RESTRICTED_TAG]
            channel["description"] = f"RESTRICTED. {channel.get('description', '')}".strip()
    return doc
