"""The AsyncAPI document each service serves: valid AsyncAPI 3.0.0 (the official JSON Schema,
vendored from @asyncapi/specs), every catalog topic present with its real payload schema in a
CloudEvents envelope, every consumed topic with its dead-letter channel, and `contacts`
marked restricted. No servers are needed: the document describes the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi import FastAPI
from jsonschema import Draft7Validator

from services.applications.app import ApplicationsSettings
from services.applications.app import create_app as create_applications
from services.matching.app import MatchingSettings
from services.matching.app import create_app as create_matching
from services.notifications.app import NotificationsSettings
from services.notifications.app import create_app as create_notifications
from shared.events import CATALOG, CONTACTS_TOPIC

SCHEMA = Path(__file__).resolve().parents[1] / "vendor" / "asyncapi" / "asyncapi-3.0.0.schema.json"
ENVELOPE = {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"}
REQUIRED = {"id", "source", "type", "time", "subject", "data"}  # specversion etc. have defaults


async def served(app: FastAPI) -> dict[str, Any]:
    # The ASGI transport does not run the app's lifespan: nothing connects to Kafka.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/asyncapi.json")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
async def documents() -> dict[str, dict[str, Any]]:
    secret = "x" * 40
    return {
        "applications": await served(create_applications(ApplicationsSettings(jwt_secret=secret))),
        "matching": await served(create_matching(MatchingSettings(jwt_secret=secret))),
        "notifications": await served(
            create_notifications(NotificationsSettings(jwt_secret=secret))
        ),
    }


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        path = unquote(node["$ref"]).removeprefix("#/").split("/")
        target: Any = doc
        for part in path:
            target = target[part]
        node = target
    return node


def payloads(doc: dict[str, Any], channel: dict[str, Any]) -> list[dict[str, Any]]:
    return [resolve(doc, resolve(doc, m)["payload"]) for m in channel["messages"].values()]


def operations(doc: dict[str, Any], action: str) -> set[str]:
    """The addresses of the channels the service sends to (`send`) or receives from."""
    return {
        resolve(doc, op["channel"])["address"]
        for op in doc.get("operations", {}).values()
        if op["action"] == action
    }


def test_each_document_is_valid_asyncapi_3(documents: dict[str, dict[str, Any]]) -> None:
    validator = Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    for service, doc in documents.items():
        assert doc["asyncapi"] == "3.0.0"
        errors = [f"{list(e.absolute_path)}: {e.message[:300]}" for e in validator.iter_errors(doc)]
        assert errors == [], (service, errors[:5])


def test_every_channel_has_a_real_payload_schema(documents: dict[str, dict[str, Any]]) -> None:
    for service, doc in documents.items():
        for name, channel in doc["channels"].items():
            for payload in payloads(doc, channel):
                assert payload.get("properties"), (service, name, payload)


def test_every_catalog_topic_is_published_with_its_cloudevent_schema(
    documents: dict[str, dict[str, Any]],
) -> None:
    sent = {service: operations(doc, "send") for service, doc in documents.items()}
    for topic, model in CATALOG.items():
        producers = [s for s, addresses in sent.items() if topic in addresses]
        assert producers, f"no service documents publishing {topic}"
        for service in producers:
            doc = documents[service]
            (channel,) = [
                c
                for c in doc["channels"].values()
                if c["address"] == topic and topic in operations(doc, "send")
            ][:1]
            (payload,) = payloads(doc, channel)
            assert set(payload["properties"]) >= ENVELOPE, (topic, sorted(payload["properties"]))
            assert set(payload.get("required", [])) >= REQUIRED, topic
            data = resolve(doc, payload["properties"]["data"])
            assert set(model.model_fields) <= set(data["properties"]), topic


def test_consumed_topics_have_their_payloads_and_dead_letter_channels(
    documents: dict[str, dict[str, Any]],
) -> None:
    for service, doc in documents.items():
        received = operations(doc, "receive")
        assert received, service
        for topic in received - {CONTACTS_TOPIC}:
            channel = next(c for c in doc["channels"].values() if c["address"] == topic)
            (payload,) = payloads(doc, channel)
            data = resolve(doc, payload["properties"]["data"])
            assert set(CATALOG[topic].model_fields) <= set(data["properties"]), (service, topic)
        dead_letters = {a for a in operations(doc, "send") if a.endswith(".dlq")}
        assert dead_letters == {f"{t}.dlq" for t in received}, service


def test_contacts_is_marked_restricted_wherever_it_appears(
    documents: dict[str, dict[str, Any]],
) -> None:
    seen = 0
    for service, doc in documents.items():
        for channel in doc["channels"].values():
            if channel["address"] in (CONTACTS_TOPIC, f"{CONTACTS_TOPIC}.dlq"):
                seen += 1
                assert channel.get("x-restricted") is True, service
                assert "restricted" in {t["name"] for t in channel.get("tags", [])}, service
                (payload,) = payloads(doc, channel)
                assert {"party_id", "email"} <= set(payload["properties"]), service
    assert seen >= 2  # published by applications, kept by notifications
