"""The restricted, compacted `contacts` topic: personal contact data for the notifications
service only. Keyed by role and party id (`student:stu-001`, `company:co-0123456789ab`), so
that no party can ever overwrite another role's contact; a tombstone (null value) under a key
means "erase this party"."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from shared.bounds import Id, Name, role_id_problem
from shared.events.timezones import TimeZoneName
from shared.events.vocabulary import Language

CONTACTS_TOPIC = "contacts"
PARTY_TYPES = ("student", "company", "coordinator", "university")


def contact_key(party_type: str, party_id: str) -> str:
    """The Kafka key (and the notifications service's `_id`) of a party's contact."""
    return f"{party_type}:{party_id}"


def parse_contact_key(key: str) -> tuple[str, str]:
    """(party type, party id) of a contacts key; ValueError when it is not one."""
    party_type, sep, party_id = key.partition(":")
    problem = role_id_problem(party_type, party_id) if sep else "no 'role:' prefix"
    if problem:
        raise ValueError(f"contacts key {key[:120]!r} is not '<role>:<id>': {problem}")
    return party_type, party_id


class ContactRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    party_id: Id
    party_type: str = Field(max_length=20, pattern=f"^({'|'.join(PARTY_TYPES)})$")
    name: Name
    email: EmailStr
    preferred_language: Language = Language.EN
    # For companies: the name shown to students, in both languages.
    organisation_ja: Name | None = None
    organisation_en: Name | None = None
    # Where the party reads their deadlines (IANA name). None: the default for the party type
    # (students Asia/Taipei, companies and the coordinator Asia/Tokyo).
    time_zone: TimeZoneName | None = None
    # When the contact was set: a consumer replaying older records can tell them from newer
    # facts (the portal ends the sessions of a company's previous contact begun before it).
    changed_at: datetime | None = None

    @model_validator(mode="after")
    def _id_fits_role(self) -> ContactRecord:
        problem = role_id_problem(self.party_type, self.party_id)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def key(self) -> str:
        return contact_key(self.party_type, self.party_id)
