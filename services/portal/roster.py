"""Rules of the university office's roster upload: reading the file's bytes as text, whom to
invite, and how far the invitations have got. Pure code, no I/O (the CSV rows themselves are
parsed by `domain.parse_roster`)."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The file-level problems (shown as the page's reason, line 0 of Roster.errors).
NO_FILE = "no_file"
NOT_TEXT = "not_text"
UNKNOWN_ENCODING = "unknown_encoding"

# Why a valid row gets no invitation (a line of Roster.errors, like a bad row).
ALREADY_INVITED = "already_invited"
ALREADY_REGISTERED = "already_registered"
ADDRESS_IN_USE = "address_in_use"  # staff, or a company's contact: one address, one person

# An invitation's states in the portal's users store: `waiting` until the sender claims it
# (`sending`), then `sent` or `failed`; a transient failure puts it back to `waiting`.
WAITING = "waiting"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"

# C0 controls other than tab, line feed and carriage return, DEL and the C1 controls: no
# spreadsheet writes them into a CSV, every binary format has them.
_CONTROL = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL_BYTES = re.compile(b"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f]")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),  # the "utf-16" codec reads the BOM and drops it
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class Unreadable(ValueError):
    """The upload is not a text file in an encoding we read; `problem` says which."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def decode_roster(data: bytes) -> str:
    """The roster's text. Excel writes CSV as UTF-8 with a BOM ("CSV UTF-8"), UTF-16 with a BOM
    ("Unicode Text"), or the system's code page: in Taiwan Big5, i.e. Windows cp950.

    We do not guess with a statistical detector (chardet and the like misname short files
    of names): a BOM is certain; then strict UTF-8, which almost never decodes text written
    in another encoding; then strict cp950, the only legacy encoding our offices use. A
    result is taken only if it looks like text (no NUL or other control characters, which
    every binary format has and no CSV does); a byte sequence neither codec accepts is
    refused with a reason instead of imported with garbled names."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _text(data, codec)
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        try:
            return _text(data, utf16)
        except Unreadable:
            pass  # NULs, but not UTF-16 text: binary (below)
    # In UTF-8 and cp950 these bytes only ever stand for control characters.
    if _CONTROL_BYTES.search(data):
        raise Unreadable(NOT_TEXT)
    for codec in ("utf-8", "cp950"):
        try:
            return _text(data, codec)
        except UnicodeDecodeError:
            continue
    raise Unreadable(UNKNOWN_ENCODING)


def _text(data: bytes, codec: str) -> str:
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        if codec.startswith("utf-16"):
            raise Unreadable(NOT_TEXT) from None
        if codec == "utf-8-sig":
            raise Unreadable(UNKNOWN_ENCODING) from None
        raise
    if _CONTROL.search(text):
        raise Unreadable(NOT_TEXT)
    return text


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 without a BOM, if the NULs say so: a roster is mostly ASCII (the addresses),
    whose characters have a NUL high byte, all on one side of each pair. The decode that
    follows is strict and checked for control characters, so binary data that happens to
    pass this test is still refused."""
    sample = data[:4096]
    if len(data) % 2 or len(sample) < 8:
        return None
    pairs = len(sample) // 2
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= pairs // 4 and even * 10 <= odd:
        return "utf-16-le"
    if even >= pairs // 4 and odd * 10 <= even:
        return "utf-16-be"
    return None


def skip_reason(existing: Mapping[str, Any] | None, company_contact: bool = False) -> str | None:
    """Why a valid roster row gets no invitation (None: invite): the address is someone
    else's (staff or a company's contact: an office must not turn them into a student), or
    the student is known already."""
    if company_contact or (existing is not None and existing.get("role") != "student"):
        return ADDRESS_IN_USE
    if existing is None:
        return None
    if existing.get("invited_at"):
        return ALREADY_INVITED  # by a roster before: no second invitation
    return ALREADY_REGISTERED


@dataclass
class InvitationProgress:
    """How far one uploaded roster's invitations have got."""

    batch: str
    uploaded_at: datetime
    total: int = 0
    sent: int = 0
    waiting: int = 0
    failed: int = 0
    failed_emails: list[str] = field(default_factory=list)


def invitation_progress(
    users: Iterable[Mapping[str, Any]], latest: int = 3
) -> list[InvitationProgress]:
    """The office's `latest` roster uploads, newest first, from its invited users."""
    batches: dict[str, InvitationProgress] = {}
    for user in users:
        batch, state = user.get("invitation_batch"), user.get("invitation_state")
        if not batch or not state:
            continue  # invited before invitations were queued
        progress = batches.get(batch)
        if progress is None:
            progress = batches[batch] = InvitationProgress(batch, user["invited_at"])
        progress.total += 1
        if state == SENT:
            progress.sent += 1
        elif state == FAILED:
            progress.failed += 1
            progress.failed_emails.append(str(user["_id"]))
        else:
            progress.waiting += 1
    newest = sorted(batches.values(), key=lambda p: p.uploaded_at, reverse=True)[:latest]
    for progress in newest:
        progress.failed_emails.sort()
    return newest
