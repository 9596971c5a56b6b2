"""The restricted, compacted `contacts` topic: personal contact data for the notifications
service only. Keyed by party id; a tombstone (null value) means "erase this party"."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, EmailStr

from shared.events.timezones import TimeZoneName
from shared.events.vocabulary import Language

CONTACTS_TOPIC = "contacts"


class ContactRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    party_id: str
    party_type: str  # student | company | coordinator
    name: str
    email: EmailStr
    preferred_language: Language = Language.EN
    # For companies: the name shown to students, in both languages.
    organisation_ja: str | None = None
    organisation_en: str | None = None
    # Where the party reads their deadlines (IANA name). None: the default for the party type
    # (students Asia/Taipei, companies and the coordinator Asia/Tokyo).
    time_zone: TimeZoneName | None = None
