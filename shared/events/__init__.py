"""Public event contract: the CloudEvents envelope and one model per event type (v1)."""

from shared.events.catalog import (
    CATALOG,
    ApplicantsRanked,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    EventData,
    MatchAccepted,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    PlacementConfirmed,
    PositionClosed,
    PositionPublished,
    RoundCompleted,
    event_type_of,
)
from shared.events.contacts import CONTACTS_TOPIC, ContactRecord
from shared.events.envelope import CloudEvent, make_event, parse_event

__all__ = [
    "CATALOG",
    "CONTACTS_TOPIC",
    "ApplicantsRanked",
    "ApplicationSubmitted",
    "ApplicationWithdrawn",
    "CloudEvent",
    "ContactRecord",
    "EventData",
    "MatchAccepted",
    "MatchDeclined",
    "MatchExpired",
    "MatchProposed",
    "PlacementConfirmed",
    "PositionClosed",
    "PositionPublished",
    "RoundCompleted",
    "event_type_of",
    "make_event",
    "parse_event",
]
