"""Why an e-mail was not sent, or not yet, in the coordinator's language.

The notifications service records its reason in English (`last_error`): its own sentences
for a message that is no longer needed or still waits for facts, and the error of a failed
attempt (the mail server's answer, a connection that failed, a template that did not render).
Like `problems.KNOWN` for the services' refusals, this words the service's own sentences and
keeps an error, which no one can translate, as a quoted detail under a translated lead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.portal.i18n import N_, gettext


@dataclass(frozen=True)
class DeliveryNote:
    text: str  # our sentence, translated
    detail: str | None = None  # the service's or the mail server's own words


# (what notifications/domain.py, store.py and delivery.py write, our sentence, keep the words)
KNOWN: tuple[tuple[re.Pattern[str], str, bool], ...] = (
    (
        re.compile(r"^recipient erased$"),
        N_("The recipient's data has been erased, so nothing more is sent to them."),
        False,
    ),
    (
        re.compile(r"^the proposal is no longer waiting for answers$"),
        N_("The proposal no longer waits for answers, so no reminder is needed."),
        False,
    ),
    (
        re.compile(r"already answered$"),
        N_("The recipient has already answered, so no reminder is needed."),
        False,
    ),
    (
        re.compile(r"^the application was withdrawn meanwhile$"),
        N_("The application was withdrawn before this message was sent."),
        False,
    ),
    (
        re.compile(r"^no contact yet for "),
        N_("Waiting for the recipient's contact details; sending is retried shortly."),
        False,
    ),
    (
        re.compile(r"^no facts yet for position "),
        N_("Waiting for the position's details; sending is retried shortly."),
        False,
    ),
    (
        re.compile(r"^could not be planned: "),
        N_(
            "The e-mails this event calls for could not be prepared. Once the cause is "
            "fixed, “Send again” prepares and sends them."
        ),
        True,
    ),
    (
        re.compile(r"^gave up after \d+ s: "),
        N_("Not sent: the details this message needs did not arrive in time."),
        True,
    ),
)


def delivery_note(last_error: str | None) -> DeliveryNote | None:
    """What to show under a message's status (None: nothing to say)."""
    if not last_error:
        return None
    for pattern, text, keep in KNOWN:
        if pattern.search(last_error):
            return DeliveryNote(gettext(text), last_error if keep else None)
    return DeliveryNote(gettext(N_("Sending failed:")), last_error)
