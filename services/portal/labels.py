"""Words for the services' codes (sectors, tracks, states, reasons), translated when shown."""

from __future__ import annotations

from services.portal.i18n import N_, gettext

LABELS: dict[str, dict[str, str]] = {
    "sector": {
        "semiconductor": N_("Semiconductors"),
        "automotive": N_("Automotive"),
        "robotics_ai": N_("Robotics and AI"),
        "other": N_("Other industries"),
    },
    "track": {
        "development_design_programming": N_("Development, design and programming"),
        "production_line": N_("Production-line development and introduction"),
        "joint_research": N_("Joint research at universities in the city"),
    },
    "company_status": {
        "pending": N_("Waiting for approval"),
        "approved": N_("Approved"),
        "rejected": N_("Not approved"),
        "suspended": N_("Suspended"),
    },
    "cohort_state": {
        "planned": N_("Draft"),
        "draft": N_("Draft"),
        "open": N_("Open for applications"),
        "closed": N_("Applications closed"),
        "matching": N_("Matching"),
        "finished": N_("Finished"),
    },
    "cohort_action": {
        "open": N_("Open the application window"),
        "close": N_("Close the application window"),
        "round": N_("Run a match round"),
        "finish": N_("Finish the cohort"),
    },
    "position_state": {"open": N_("Open"), "closed": N_("Closed")},
    "application_state": {
        "submitted": N_("Submitted"),
        "proposed": N_("Proposed a match"),
        "placed": N_("Placed"),
        "withdrawn": N_("Withdrawn"),
        "declined": N_("Declined"),
        "expired": N_("Expired"),
        "cancelled": N_("Cancelled"),
        "not_matched": N_("Not matched in the last round"),
    },
    "proposal_status": {
        "proposed": N_("Waiting for answers"),
        "confirmed": N_("Confirmed"),
        "declined": N_("Declined"),
        "expired": N_("Expired"),
        "cancelled": N_("Cancelled"),
    },
    "answer": {
        "accepted": N_("Accepted"),
        "declined": N_("Declined"),
        "": N_("Not answered yet"),
    },
    "delivery_status": {
        "pending": N_("Waiting to be sent"),
        "sending": N_("Sending"),
        "sent": N_("Sent"),
        "failed": N_("Failed"),
        "suppressed": N_("Not sent (no longer needed)"),
    },
    "residence": {
        "designated_activities": N_(
            "Designated Activities (特定活動, notice no. 9): a paid internship that is part of "
            "the curriculum; Taipei Tech and the host company sign an internship agreement."
        ),
        "temporary_visitor": N_(
            "Temporary Visitor (短期滞在): an unpaid internship of at most 90 days."
        ),
        "cultural_activities": N_(
            "Cultural Activities (文化活動): an unpaid internship of more than 90 days."
        ),
    },
    "exclusion": {
        "position_unavailable": N_("The position is closed or has no free seat."),
        "no_consent": N_("The student has not consented to the use of their data."),
        "jlpt_below_minimum": N_("The student's JLPT level is below the position's minimum."),
        "english_below_minimum": N_("The student's English level is below the position's minimum."),
        "availability_does_not_cover_dates": N_(
            "The student is not available for the whole internship period."
        ),
        "previously_declined": N_("This pair was declined in an earlier round."),
        "previously_expired": N_("This pair let an earlier proposal expire."),
        "not_ranked_by_company": N_("The company did not rank this student."),
    },
    "paid": {"true": N_("Paid"), "false": N_("Unpaid")},
    "degree": {
        "bachelor": N_("Bachelor"),
        "master": N_("Master"),
        "doctorate": N_("Doctorate"),
    },
    "role": {
        "coordinator": N_("City coordinator"),
        "company": N_("Host company"),
        "student": N_("Student"),
        "university": N_("University office"),
    },
    "stage": {
        "invited": N_("Invited"),
        "profile": N_("Profile completed"),
        "applied": N_("Applied"),
        "proposed": N_("Proposal received"),
        "placed": N_("Placed"),
    },
    "roster_error": {
        "bad_email": N_("not a valid e-mail address"),
        "missing_columns": N_("needs e-mail, name and department"),
        "duplicate": N_("the address appears twice"),
        "too_many_rows": N_("too many rows; split the file"),
    },
}

JLPT = ("N1", "N2", "N3", "N4", "N5")
ENGLISH = ("C2", "C1", "B2", "B1", "A2", "A1")


def label(kind: str, value: object) -> str:
    """The translated word for a code; the code itself when we have no word for it."""
    key = str(value).lower() if isinstance(value, bool) else str(value if value is not None else "")
    text = LABELS.get(kind, {}).get(key)
    return gettext(text) if text else key


def options(kind: str) -> list[tuple[str, str]]:
    return [(code, gettext(text)) for code, text in LABELS[kind].items() if code]


def company_name(company: dict[str, object] | None, language: str) -> str:
    """Japanese readers see the Japanese name, everyone else the English one."""
    if not company:
        return ""
    if language == "ja":
        return str(company.get("name_ja") or company.get("name_en") or "")
    return str(company.get("name_en") or company.get("name_ja") or "")
