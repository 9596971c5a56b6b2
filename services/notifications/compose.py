"""Composing the e-mail of a planned message, and the facts a batch of messages needs (pure).

The facts (contacts, erasures, position facts, proposals' answers, withdrawn applications)
are read for a whole batch of messages at once by `NotificationsStore.facts_for`, so a batch
costs a few queries instead of a few per message. Whether a message is still wanted is
decided by `domain.unwanted_reason` from `Facts.about(message)`; to give that rule or the
templates more facts, add them to `Facts` (and to `facts_for`).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from email.header import Header
from email.message import Message
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr
from typing import Any

from services.notifications.domain import MessageFacts
from services.notifications.rendering import Renderer, Site, build_context
from services.notifications.smtp_pool import Envelope
from services.notifications.wording import language_of
from shared.events.contacts import contact_key

Doc = dict[str, Any]


class TransientDeliveryError(Exception):
    """Not deliverable yet (e.g. the contact has not arrived); try again later."""


@dataclass
class Facts:
    """What deciding and composing a batch of messages may need, keyed by id."""

    # Contacts and erasures by role and id (`contact_key`), as the contacts topic keys them.
    contacts: dict[str, Doc] = field(default_factory=dict)  # incl. the coordinator's
    erased: set[str] = field(default_factory=set)
    positions: dict[str, Doc] = field(default_factory=dict)
    proposals: dict[str, Doc] = field(default_factory=dict)
    withdrawn_applications: set[str] = field(default_factory=set)

    def about(self, message: Doc) -> MessageFacts:
        """What `domain.unwanted_reason` needs to know about one message."""
        recipient = message["recipient_id"]
        data = message["data"]
        proposal = self.proposals.get(data["proposal_id"]) if "proposal_id" in data else None
        withdrawn = (
            message["template"] == "not_matched.student"
            and not_matched_application(message) in self.withdrawn_applications
        )
        return MessageFacts(
            recipient_erased=contact_key(message["recipient_kind"], recipient) in self.erased,
            proposal=proposal,
            application_withdrawn=withdrawn,
        )


def not_matched_application(message: Doc) -> str | None:
    """The application a not-matched notice is about (messages planned before issue 20
    kept the round's whole list instead)."""
    data = message["data"]
    if "application_id" in data:
        return str(data["application_id"])
    for ref in data.get("unmatched_applications", []):
        if ref["student_id"] == message["recipient_id"]:
            return str(ref["application_id"])
    return None


@dataclass(frozen=True)
class Composed:
    email: Message
    language: str  # the language the text was rendered in
    # The text as a reader sees it, for the message log.
    to: str
    subject: str
    body: str
    envelope: Envelope


def message_header_id(message_id: str) -> str:
    """Stable per (event, recipient): a resend after a crash is recognisably the same mail."""
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:32]
    return f"<{digest}@kitakyushu-internships>"


def compose(message: Doc, facts: Facts, renderer: Renderer, *, sender: str, site: Site) -> Composed:
    """The e-mail for one message. Raises TransientDeliveryError while facts are missing."""
    recipient_id = message["recipient_id"]
    contact = facts.contacts.get(contact_key(message["recipient_kind"], recipient_id))
    if contact is None:
        raise TransientDeliveryError(f"no contact yet for {recipient_id}")
    data = message["data"]
    position = None
    if "position_id" in data:
        position = facts.positions.get(data["position_id"])
        if position is None:
            raise TransientDeliveryError(f"no facts yet for position {data['position_id']}")
    student_name = None
    if "student_id" in data and recipient_id != data["student_id"]:
        student = facts.contacts.get(contact_key("student", data["student_id"]))
        student_name = student["name"] if student else None
    language = language_of(contact.get("preferred_language"))
    context = build_context(
        message, contact, language, student_name=student_name, position=position, site=site
    )
    subject, body, used = renderer.render(message["template"], language, context)
    name = _one_line(contact["name"])
    # The compat32 message API on purpose: the modern EmailMessage parses every header it
    # is given and refolds it when sent, which made composing cost more CPU than sending.
    # Non-ASCII names and subjects are encoded here instead (RFC 2047), the body as UTF-8.
    email = MIMEText(body, "plain", "utf-8")
    sender_name, sender_address = _parsed(sender)
    email["From"] = formataddr((sender_name, sender_address), charset="utf-8")
    email["To"] = formataddr((name, contact["email"]), charset="utf-8")
    email["Subject"] = (
        subject if subject.isascii() else Header(subject, "utf-8", header_name="Subject").encode()
    )
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = message_header_id(message["_id"])
    email["X-Event-Id"] = message["event_id"]
    email["X-Template"] = message["template"]
    email["Content-Language"] = used.value
    envelope = Envelope(sender_address, [contact["email"]])
    return Composed(email, used.value, f"{name} <{contact['email']}>", subject, body, envelope)


@functools.lru_cache(maxsize=8)
def _parsed(sender: str) -> tuple[str, str]:
    """The configured sender as (name, address), parsed once rather than for every mail."""
    return parseaddr(sender)


def _one_line(text: str) -> str:
    """No line breaks in a header: a name cannot add headers of its own."""
    return " ".join(text.split())
