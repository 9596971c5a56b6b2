"""Pure rules of the portal: sign-in secrets, sessions, who may register, lists, rosters and
which step comes next. No I/O."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import math
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import EmailStr, TypeAdapter, ValidationError

from shared.bounds import NoteCode, without_bidi_controls


class PortalRole(StrEnum):
    COORDINATOR = "coordinator"
    COMPANY = "company"
    STUDENT = "student"
    UNIVERSITY = "university"

    @property
    def is_staff(self) -> bool:
        """Let in by the operator (`make user`), not by registering."""
        return self in (PortalRole.COORDINATOR, PortalRole.UNIVERSITY)


HOME = {
    PortalRole.COORDINATOR: "/coordinator",
    PortalRole.COMPANY: "/company",
    PortalRole.STUDENT: "/student",
    PortalRole.UNIVERSITY: "/university",
}

# Stored per party, not inferred from the language (TEAM.md): students and the university
# office are in Taipei, companies and the city office in Kitakyushu.
DEFAULT_TIME_ZONE = {
    PortalRole.COORDINATOR: "Asia/Tokyo",
    PortalRole.COMPANY: "Asia/Tokyo",
    PortalRole.STUDENT: "Asia/Taipei",
    PortalRole.UNIVERSITY: "Asia/Taipei",
}

_EMAIL = TypeAdapter(EmailStr)


def normalise_email(value: str) -> str | None:
    """The address in the one form we store and compare, or None if it is not an address."""
    value = value.strip()
    if not value or len(value) > 254:
        return None
    try:
        return str(_EMAIL.validate_python(value)).lower()
    except ValidationError:
        return None


def student_domain_allowed(email: str, domains: tuple[str, ...]) -> bool:
    """Empty `domains` admits any address; else the domain or one of its subdomains."""
    if not domains:
        return True
    domain = email.rsplit("@", 1)[-1].lower()
    return any(domain == d or domain.endswith("." + d) for d in domains)


# -- one address, one person ------------------------------------------------------------------

# A company's contact signs in while the company is approved, and still once it is suspended
# (its mails link to its pages, and confirmed placements stay; the services refuse what such a
# company may no longer do). A pending registration gets no link, and a rejected one never: an
# impostor's rejected registration must not catch the real contact's sign-in.
COMPANY_SIGN_IN = frozenset({"approved", "suspended"})
# A registration holds its address until it is rejected (as the applications service rules).
COMPANY_HOLDS_ADDRESS = frozenset({"pending", "approved", "suspended"})
# A company whose status becomes one of these loses its sessions at once.
COMPANY_RIGHTS_END = frozenset({"rejected", "suspended"})


@dataclass(frozen=True)
class Holder:
    """A live identity that an e-mail address belongs to."""

    role: PortalRole
    sub: str
    name: str | None = None
    can_sign_in: bool = True


def holders(user: Mapping[str, Any] | None, companies: Iterable[Mapping[str, Any]]) -> list[Holder]:
    """Everyone an address belongs to: the portal's own person (staff or student) and the live
    company registrations whose contact it is."""
    found: list[Holder] = []
    if user is not None:
        found.append(Holder(PortalRole(user["role"]), str(user["sub"]), user.get("name")))
    for company in companies:
        status = str(company.get("status"))
        if status in COMPANY_HOLDS_ADDRESS:
            found.append(
                Holder(
                    PortalRole.COMPANY,
                    str(company["id"]),
                    company.get("name_ja"),
                    can_sign_in=status in COMPANY_SIGN_IN,
                )
            )
    return found


class Ambiguous(Exception):
    """An address that already belongs to more than one live identity (data from before the
    rule, or a registration made past the portal): nobody signs in with it until an operator
    has settled it (`python -m services.portal identities` lists such addresses)."""

    def __init__(self, found: list[Holder]) -> None:
        super().__init__(", ".join(f"{h.role.value}:{h.sub}" for h in found))
        self.holders = found


def sign_in_holder(found: list[Holder]) -> Holder | None:
    """Whom a sign-in link for the address is for: its one holder that may sign in. A pending
    registration does not count: anyone may answer the public call with anyone's address, and
    that must not lock the address's owner out."""
    can = [holder for holder in found if holder.can_sign_in]
    if len(can) > 1:
        raise Ambiguous(can)
    return can[0] if can else None


def taken_by_other(found: list[Holder], role: PortalRole, sub: str | None = None) -> Holder | None:
    """The holder that keeps `role`/`sub` (None: someone new) from using the address, if any;
    the identity itself does not."""
    for holder in found:
        if holder.role is not role or holder.sub != sub:
            return holder
    return None


# -- secrets -------------------------------------------------------------------------------


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What we store instead of a sign-in link or session secret: a leaked database does not
    give anyone a way in."""
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token(key: str, session_key: str) -> str:
    """The form token bound to one browser session (the synchronizer-token pattern, derived
    rather than stored): an attacker's page cannot read it, so cannot forge a form post."""
    return hmac.new(key.encode(), f"csrf:{session_key}".encode(), hashlib.sha256).hexdigest()


def csrf_valid(key: str, session_key: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(key, session_key), presented or "")


# C0, DEL and C1: no id, path or name the portal handles has a reason to contain one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control_character(text: str) -> bool:
    return _CONTROL.search(text) is not None


def safe_next(path: str | None, default: str = "/") -> str:
    """Only a path on this site: never another host (`//evil`, `https://evil`, `\\\\evil`).
    Browsers drop tabs and line breaks from a URL (`/<TAB>/evil` is `//evil` to them), and a
    control character cannot go into a Location header: such a path is refused too."""
    if (
        not path
        or not path.startswith("/")
        or path.startswith("//")
        or "\\" in path
        or has_control_character(path)
    ):
        return default
    return path


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta

    def expired(self, created_at: datetime, last_seen: datetime, now: datetime) -> bool:
        return now - last_seen > self.idle or now - created_at > self.absolute


def window_start(now: datetime, minutes: int) -> datetime:
    """The fixed window a rate-limited request falls in."""
    size = minutes * 60
    return datetime.fromtimestamp(math.floor(now.timestamp() / size) * size, tz=now.tzinfo)


# -- lists -----------------------------------------------------------------------------------


@dataclass
class ListView:
    """One page of a filtered, sorted list, and what the page needs to draw its controls."""

    items: list[Any]
    page: int
    pages: int
    total: int
    sort: str
    descending: bool
    params: dict[str, str] = field(default_factory=dict)


def _sort_key(value: Any) -> tuple[int, Any]:
    # Missing values last, whatever their type; strings compare case-insensitively.
    if value is None:
        return (1, "")
    if isinstance(value, str):
        return (0, value.casefold())
    return (0, value)


def list_view(
    rows: Iterable[Any],
    params: Mapping[str, str],
    *,
    sorts: Mapping[str, Callable[[Any], Any]],
    default_sort: str,
    filters: Mapping[str, Callable[[Any, str], bool]] | None = None,
    page_size: int = 20,
    newest_first: bool = False,
) -> ListView:
    """Filter by every known, non-empty parameter; sort by an allowed key; cut one page."""
    filters = filters or {}
    kept: dict[str, str] = {}
    selected = list(rows)
    for name, keep in filters.items():
        value = (params.get(name) or "").strip()
        if value:
            kept[name] = value
            selected = [row for row in selected if keep(row, value)]
    asked = params.get("sort") or ""
    sort = asked if asked in sorts else default_sort
    order = params.get("order")
    descending = order == "desc" if order in ("asc", "desc") else newest_first
    selected.sort(key=lambda row: _sort_key(sorts[sort](row)), reverse=descending)
    total = len(selected)
    pages = max(1, math.ceil(total / page_size))
    try:
        page = min(max(1, int(params.get("page", "1"))), pages)
    except ValueError:
        page = 1
    start = (page - 1) * page_size
    return ListView(
        items=selected[start : start + page_size],
        page=page,
        pages=pages,
        total=total,
        sort=sort,
        descending=descending,
        params=kept,
    )


def contains(text: str | None, needle: str) -> bool:
    return needle.casefold() in (text or "").casefold()


# -- ranked lists (a company's ranking, a student's application) ------------------------------


def reorder(order: list[str], item: str, action: str) -> list[str]:
    """Move one item up, down, to the top, or remove it: the keyboard and no-JavaScript way to
    reorder a ranked list (drag and drop does the same in the browser)."""
    if item not in order:
        return list(order)
    result = list(order)
    index = result.index(item)
    if action == "remove":
        result.pop(index)
    elif action == "up" and index > 0:
        result[index - 1], result[index] = result[index], result[index - 1]
    elif action == "down" and index < len(result) - 1:
        result[index + 1], result[index] = result[index], result[index + 1]
    elif action == "top":
        result.insert(0, result.pop(index))
    return result


def keep_known(order: Iterable[str], known: Iterable[str]) -> list[str]:
    """The submitted order, without unknown or repeated ids (a tampered form cannot add any)."""
    allowed = set(known)
    seen: list[str] = []
    for item in order:
        if item in allowed and item not in seen:
            seen.append(item)
    return seen


# -- roster ---------------------------------------------------------------------------------

ROSTER_MAX_ROWS = 2000
ROSTER_MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class RosterRow:
    email: str
    name: str
    department: str
    line: int = 0  # in the file, to name a row that is skipped later


@dataclass
class Roster:
    rows: list[RosterRow]
    errors: list[tuple[int, str]]  # (line number, problem code)


def parse_roster(text: str) -> Roster:
    """A roster CSV (e-mail, name, department; a header line is optional), with any line ends
    (newline="" lets the csv module split on \\n, \\r\\n and a Mac's bare \\r). Excel's
    "Unicode Text" separates with tabs: a first line with a tab and no comma says so."""
    rows: list[RosterRow] = []
    errors: list[tuple[int, str]] = []
    seen: set[str] = set()
    text = text.lstrip("\ufeff")
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line_no = 0
    try:
        for line_no, record in enumerate(reader, start=1):
            problem = _roster_row(line_no, [c.strip() for c in record], rows, seen)
            if problem:
                errors.append((line_no, problem))
                if problem == "too_many_rows":
                    break
    except csv.Error:
        # A quote left open, a field over the csv module's limit: the rest is not read.
        errors.append((line_no + 1, "unreadable_csv"))
    return Roster(rows, errors)


def _roster_row(line_no: int, cells: list[str], rows: list[RosterRow], seen: set[str]) -> str:
    """Adds the row, or says why not ("" for a blank line or the header)."""
    if not any(cells):
        return ""
    if line_no == 1 and "@" not in cells[0]:
        return ""  # a header, whatever its words ("email", "電子郵件", ...)
    if len(rows) >= ROSTER_MAX_ROWS:
        return "too_many_rows"
    if len(cells) < 3:
        return "missing_columns"
    email = normalise_email(cells[0])
    if email is None:
        return "bad_email"
    # No bidi overrides in names that go into mails and pages (as the services' bounds do).
    name = without_bidi_controls(cells[1]).strip()[:200]
    department = without_bidi_controls(cells[2]).strip()[:200]
    if not name or not department:
        return "missing_columns"
    if email in seen:
        return "duplicate"
    seen.add(email)
    rows.append(RosterRow(email, name, department, line_no))
    return ""


# -- what comes next --------------------------------------------------------------------------


def cohort_steps(cohort: Mapping[str, Any]) -> list[str]:
    """The coordinator's buttons for a cohort: the steps the applications service allows now
    (`allowed_actions`), with "open" named "reopen" when the window was open before."""
    return [
        "reopen" if action == "open" and cohort.get("state") == "closed" else str(action)
        for action in cohort.get("allowed_actions") or ()
    ]


@dataclass(frozen=True)
class RoundOutlook:
    """The counts that tell the coordinator whether another match round makes sense."""

    free_seats: int  # seats of open positions held by no pending proposal or placement
    unplaced: int  # applicants taking part with neither a placement nor a pending proposal
    pending: int  # proposals still waiting for an answer

    @property
    def can_place(self) -> bool:
        """A round can only propose someone when a seat is free and someone waits for one
        (whether the two fit, the round preview tells)."""
        return self.free_seats > 0 and self.unplaced > 0


def round_outlook(
    positions: Iterable[Mapping[str, Any]],
    applications: Iterable[Mapping[str, Any]],
    proposals: Iterable[Mapping[str, Any]],
    placements: Iterable[Mapping[str, Any]],
) -> RoundOutlook:
    """What another round could do in a cohort, from its positions and applications (the
    applications service) and its proposals and placements (the matching service)."""
    pending = [p for p in proposals if p.get("status") in PENDING_PROPOSAL]
    placed = [p for p in placements if p.get("status", "confirmed") == "confirmed"]
    held: dict[str, int] = {}
    for p in (*pending, *placed):
        held[p["position_id"]] = held.get(p["position_id"], 0) + 1
    free = sum(
        max(0, int(p.get("capacity", 0)) - held.get(p["id"], 0))
        for p in positions
        if p.get("state") == "open"
    )
    seated = {p["student_id"] for p in (*pending, *placed)}
    waiting = {
        a["student_id"]
        for a in applications
        if a.get("state") != "withdrawn" and not a.get("replaced_by")
    }
    return RoundOutlook(free_seats=free, unplaced=len(waiting - seated), pending=len(pending))


def can_answer(proposal: Mapping[str, Any]) -> bool:
    """The reader may accept or decline this proposal now (the matching service says so)."""
    return "accept" in (proposal.get("allowed_actions") or ())


PENDING_PROPOSAL = ("proposed", "accepted")
# An application's status once its proposal has ended this way.
ENDED_PROPOSAL_STATE = {
    "confirmed": "placed",
    "declined": "declined",
    "expired": "expired",
    "cancelled": "cancelled",
}


@dataclass(frozen=True)
class Standing:
    """Where one application stands, as a page shows it: the status, and why it was cancelled
    (a label kind and a reason code) when it was."""

    state: str
    reason: tuple[str, str] | None = None


def standing(
    application: Mapping[str, Any],
    proposals: Mapping[str, Mapping[str, Any]],
    placements: Mapping[str, Mapping[str, Any]],
) -> Standing:
    """The application's status from the applications service, with the matching service's
    newer facts about its current proposal folded in. The applications service learns them
    by event a moment later; the student who has just answered should see their answer, not
    the status of a second ago. `proposals` by id, `placements` by proposal id."""
    state = str(application["state"])
    known = application.get("proposal") or {}
    proposal_id = application.get("proposal_id") or known.get("proposal_id")
    proposal = proposals.get(proposal_id or "") or {}
    placement = placements.get(proposal_id or "") or {}
    if state == "proposed" and proposal.get("status") in ENDED_PROPOSAL_STATE:
        state = ENDED_PROPOSAL_STATE[proposal["status"]]
    if state == "placed" and placement.get("status") == "cancelled":
        state = "cancelled"
    if state != "cancelled":
        return Standing(state)
    if placement.get("status") == "cancelled":
        return Standing(state, ("placement_cancel_reason", placement["cancel_reason"]))
    if known.get("status") == "placement_cancelled" and known.get("reason"):
        return Standing(state, ("placement_cancel_reason", known["reason"]))
    reason = proposal.get("cancel_reason") or known.get("reason")
    return Standing(state, ("match_cancel_reason", reason) if reason else None)


# The coordinator's reference into the city's case file, checked by the events' own type:
# a code, never free text, because placement-cancelled is a public event.
_NOTE_CODE = TypeAdapter(NoteCode)


def note_code_valid(value: str) -> bool:
    try:
        _NOTE_CODE.validate_python(value)
    except ValidationError:
        return False
    return True
