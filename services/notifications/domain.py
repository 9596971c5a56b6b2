"""Who hears what and when, and whether a message is still wanted when it is due (pure).

Each public event becomes zero or more messages, one per recipient and kind, identified by
(event id, recipient[, kind]); the text is rendered when the message is sent, in the
recipient's preferred language (English when a template or language is missing). A message
may be planned for later (the reminder before an answer deadline); when it falls due, it is
sent only if it is still wanted (the recipient was not erased, has not answered yet, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.events import (
    ApplicationsNotMatched,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CloudEvent,
    CompanyStatusChanged,
    InternshipCompleted,
    MatchAccepted,
    MatchCancelled,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    PlacementCancelled,
    PlacementConfirmed,
    RoundCompleted,
)
from shared.events.vocabulary import MatchCancelReason, Party, PlacementCancelReason

# The program's own recipient: COORDINATOR_EMAIL, when it is set to a real address.
COORDINATOR = "coordinator"
# The program mails a coordinator chooses to receive (the portal's preferences page); a
# coordinator who has not chosen receives all three.
ROUND_SUMMARY, PLACEMENTS, DELIVERY_FAILURES = "round_summary", "placements", "delivery_failures"
SUBSCRIPTIONS = (ROUND_SUMMARY, PLACEMENTS, DELIVERY_FAILURES)
SUBSCRIPTION_OF = {
    "round_completed.coordinator": ROUND_SUMMARY,
    "placement_confirmed.coordinator": PLACEMENTS,
    "placement_cancelled.coordinator": PLACEMENTS,
    "delivery_failures.coordinator": DELIVERY_FAILURES,
}
# Failed deliveries are told in one digest per coordinator and window, never one per mail.
DELIVERY_FAILURES_TEMPLATE = "delivery_failures.coordinator"
DIGEST_WINDOW = timedelta(minutes=15)
REMINDER = "reminder"
# Whoever has not answered a proposal hears again this long before its deadline.
REMINDER_BEFORE = timedelta(hours=48)
# Withdrawals the student asked for (an edit or an erasure is not confirmed by mail).
CONFIRMED_WITHDRAWALS = ("withdrawn", "consent_withdrawn")


@dataclass(frozen=True)
class Planned:
    """One message to send: to whom, which template, and the public facts it needs."""

    recipient_id: str  # a party id, or "coordinator"
    recipient_kind: str  # student | company | coordinator
    template: str  # e.g. "match_proposed.student"
    # Parties whose personal data the rendered body will contain (for erasure).
    about: tuple[str, ...] = ()
    # Tells apart several messages one event sends one recipient (e.g. "reminder").
    kind: str = ""
    # Not to be sent before this moment (None: now).
    not_before: datetime | None = None
    # What this one message needs beyond the event's shared facts (e.g. which application
    # a not-matched notice is about): a message never carries the event's lists.
    details: tuple[tuple[str, str], ...] = ()


# Payload fields listing many parties: each message keeps only its own entry (`details`).
LISTS = frozenset({"unmatched_applications", "applications"})
# A notice that could not be planned (its event was dead-lettered), shown to the
# coordinator among the failed deliveries; retrying it plans the event again.
NOT_PLANNED_TEMPLATE = "notices_not_planned.coordinator"
NOT_PLANNED = "could not be planned: "


def shared_facts(data: dict[str, Any]) -> dict[str, Any]:
    """What every message of an event keeps of its payload: all but the lists of parties
    (bounded: a message's size does not grow with the fan-out)."""
    return {k: v for k, v in data.items() if k not in LISTS}


def not_matched(refs: Any) -> list[Planned]:
    return [
        Planned(
            ref.student_id,
            "student",
            "not_matched.student",
            details=(("application_id", ref.application_id),),
        )
        for ref in refs
    ]


def reminder_time(respond_by: datetime, proposed_at: datetime) -> datetime | None:
    """When to remind; None when the whole answer period is shorter than the lead time
    (a reminder with the proposal itself would say nothing new)."""
    at = respond_by - REMINDER_BEFORE
    return at if at > proposed_at else None


def plan(event: CloudEvent[Any]) -> list[Planned]:
    """Decide who is told about `event`."""
    data = event.data
    if isinstance(data, ApplicationSubmitted):
        return [Planned(data.student_id, "student", "application_submitted.student")]
    if isinstance(data, ApplicationWithdrawn):
        if data.reason in CONFIRMED_WITHDRAWALS:
            return [Planned(data.student_id, "student", "application_withdrawn.student")]
        return []
    if isinstance(data, MatchProposed):
        planned = [
            Planned(data.student_id, "student", "match_proposed.student"),
            Planned(data.company_id, "company", "match_proposed.company", (data.student_id,)),
        ]
        remind_at = reminder_time(data.respond_by, data.proposed_at)
        if remind_at is not None:
            planned += [
                Planned(
                    data.student_id,
                    "student",
                    "answer_reminder.student",
                    kind=REMINDER,
                    not_before=remind_at,
                ),
                Planned(
                    data.company_id,
                    "company",
                    "answer_reminder.company",
                    (data.student_id,),
                    kind=REMINDER,
                    not_before=remind_at,
                ),
            ]
        return planned
    if isinstance(data, MatchAccepted):
        # The other side learns that this side said yes, unless it already said yes too:
        # then the placement confirmation tells everyone.
        if data.completes_placement:
            return []
        if data.party is Party.STUDENT:
            return [
                Planned(data.company_id, "company", "match_accepted.company", (data.student_id,))
            ]
        return [Planned(data.student_id, "student", "match_accepted.student")]
    if isinstance(data, MatchDeclined):
        return [
            Planned(data.student_id, "student", "match_declined.student"),
            Planned(data.company_id, "company", "match_declined.company", (data.student_id,)),
        ]
    if isinstance(data, MatchExpired):
        return [
            Planned(data.student_id, "student", "match_expired.student"),
            Planned(data.company_id, "company", "match_expired.company", (data.student_id,)),
        ]
    if isinstance(data, MatchCancelled):
        planned = [
            Planned(data.company_id, "company", "match_cancelled.company", (data.student_id,))
        ]
        if data.reason != MatchCancelReason.STUDENT_ERASED:  # nobody left to tell
            planned.insert(0, Planned(data.student_id, "student", "match_cancelled.student"))
        return planned
    if isinstance(data, PlacementConfirmed):
        return [
            Planned(data.student_id, "student", "placement_confirmed.student"),
            Planned(data.company_id, "company", "placement_confirmed.company", (data.student_id,)),
            Planned(
                COORDINATOR, COORDINATOR, "placement_confirmed.coordinator", (data.student_id,)
            ),
        ]
    if isinstance(data, PlacementCancelled):
        planned = [
            Planned(data.company_id, "company", "placement_cancelled.company", (data.student_id,)),
            Planned(
                COORDINATOR, COORDINATOR, "placement_cancelled.coordinator", (data.student_id,)
            ),
        ]
        if data.reason != PlacementCancelReason.STUDENT_ERASED:
            planned.insert(0, Planned(data.student_id, "student", "placement_cancelled.student"))
        return planned
    if isinstance(data, InternshipCompleted):
        # Thanks to both, and the request to hear of the intern's next step (the outcome).
        return [
            Planned(data.student_id, "student", "internship_completed.student"),
            Planned(data.company_id, "company", "internship_completed.company", (data.student_id,)),
        ]
    if isinstance(data, RoundCompleted):
        # Events from before applications-not-matched list the unmatched here.
        return [
            Planned(COORDINATOR, COORDINATOR, "round_completed.coordinator"),
            *not_matched(data.unmatched_applications),
        ]
    if isinstance(data, ApplicationsNotMatched):
        return not_matched(data.applications)
    if isinstance(data, CompanyStatusChanged):
        return [Planned(data.company_id, "company", f"company_{data.status.value}.company")]
    return []


def is_real_address(address: str) -> bool:
    """COORDINATOR_EMAIL counts only when set to a deliverable address: empty, or the old
    placeholder under the reserved .invalid domain (RFC 2606), sends nothing."""
    domain = address.strip().rpartition("@")[2].lower()
    return bool(domain) and not (domain == "invalid" or domain.endswith(".invalid"))


def to_coordinators(
    planned: list[Planned], subscribers: Mapping[str, frozenset[str]], *, program_address: bool
) -> list[Planned]:
    """Program mails (planned for COORDINATOR) go to each coordinator who subscribed to
    their kind, one message each (`subscribers`: coordinator id -> subscriptions), and to
    COORDINATOR_EMAIL when it is a real address (`program_address`)."""
    out: list[Planned] = []
    for p in planned:
        if p.recipient_id != COORDINATOR:
            out.append(p)
            continue
        if program_address:
            out.append(p)
        wanted = SUBSCRIPTION_OF[p.template]
        out += [
            replace(p, recipient_id=sub)
            for sub in sorted(subscribers)
            if wanted in subscribers[sub]
        ]
    return out


def digest_window(at: datetime) -> tuple[datetime, datetime]:
    """The window a failure at `at` is told in: its digest is sent when the window ends."""
    step = int(DIGEST_WINDOW.total_seconds())
    start = datetime.fromtimestamp(int(at.timestamp()) // step * step, tz=at.tzinfo)
    return start, start + DIGEST_WINDOW


# -- what a message depends on, tracked from the events ---------------------------------


def proposal_progress(event: CloudEvent[Any]) -> tuple[str, dict[str, bool]] | None:
    """What an event says about a proposal's answers: (proposal id, facts to set)."""
    data = event.data
    if isinstance(data, MatchAccepted | MatchDeclined):
        facts = {f"{data.party.value}_answered": True}
        if isinstance(data, MatchDeclined):
            facts["closed"] = True
        return data.proposal_id, facts
    if isinstance(data, MatchExpired | MatchCancelled | PlacementConfirmed):
        return data.proposal_id, {"closed": True}
    return None


@dataclass(frozen=True)
class MessageFacts:
    """What the notifications service knows, at send time, about a message's subject."""

    recipient_erased: bool = False
    proposal: dict[str, Any] | None = None  # {student_answered, company_answered, closed}
    application_withdrawn: bool = False


# Why a message is not sent, as the message log keeps it (`last_error`); the portal words
# each for the coordinator (services/portal/delivery_notes.py), so change them together.
RECIPIENT_ERASED = "recipient erased"
PROPOSAL_CLOSED = "the proposal is no longer waiting for answers"
ALREADY_ANSWERED = "already answered"
APPLICATION_WITHDRAWN = "the application was withdrawn meanwhile"


def unwanted_reason(message: dict[str, Any], facts: MessageFacts) -> str | None:
    """Why a due message must not be sent any more (None: send it)."""
    if facts.recipient_erased:
        return RECIPIENT_ERASED
    template = message["template"]
    if template.startswith("answer_reminder."):
        proposal = facts.proposal or {}
        if proposal.get("closed"):
            return PROPOSAL_CLOSED
        if proposal.get(f"{message['recipient_kind']}_answered"):
            return f"the {message['recipient_kind']} has {ALREADY_ANSWERED}"
    if template == "not_matched.student" and facts.application_withdrawn:
        return APPLICATION_WITHDRAWN
    return None
