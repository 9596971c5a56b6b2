"""Words for the services' codes (sectors, tracks, states, reasons), translated when shown."""

from __future__ import annotations

from services.portal.i18n import N_, Nc_, gettext, pgettext

# Kinds whose words are translated in a context (the literal in their `Nc_` marks).
CONTEXTS = {"message": "e-mail"}

LABELS: dict[str, dict[str, str]] = {
    "sector": {
        "semiconductor": N_("Semiconductors"),
        "automotive": N_("Automotive"),
        "robotics_ai": N_("Robotics and AI"),
        "other": N_("Other industries"),
    },
    # Kitakyushu's seven wards; the code is the romanised name the API has always stored.
    "ward": {
        "Moji-ku": N_("Moji-ku"),
        "Kokurakita-ku": N_("Kokurakita-ku"),
        "Kokuraminami-ku": N_("Kokuraminami-ku"),
        "Wakamatsu-ku": N_("Wakamatsu-ku"),
        "Yahatahigashi-ku": N_("Yahatahigashi-ku"),
        "Yahatanishi-ku": N_("Yahatanishi-ku"),
        "Tobata-ku": N_("Tobata-ku"),
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
        "draft": N_("Draft"),
        "open": N_("Open for applications"),
        "closed": N_("Applications closed"),
        "matching": N_("Matching"),
        "finished": N_("Finished"),
    },
    # What the coordinator does next, by the cohort's state.
    "cohort_next": {
        "draft": N_(
            "Approve the host companies and let them publish positions, then open the "
            "application window."
        ),
        "open": N_(
            "Companies publish positions and students apply. Close the window when the "
            "application period ends: a round needs a closed window."
        ),
        "closed": N_(
            "Preview the round, and run it when matching has received every application. "
            "Until the first round you can still reopen the window."
        ),
        "matching": N_(
            "Students and companies answer the proposals. Run another round for seats that "
            "were declined, lapsed or cancelled, or finish the cohort when the placements are "
            "settled."
        ),
        "finished": N_(
            "The cohort is finished: no further rounds. The placements stay as they are."
        ),
    },
    "cohort_action": {
        "open": N_("Open the application window"),
        "reopen": N_("Reopen the application window"),
        "close": N_("Close the application window"),
        "run_round": N_("Run a match round"),
        "finish": N_("Finish the cohort"),
    },
    "company_action": {
        "approve": N_("Approve"),
        "reject": N_("Reject"),
        "suspend": N_("Suspend"),
    },
    "position_state": {"open": N_("Open"), "closed": N_("Closed")},
    "position_closed_reason": {
        "closed": N_("Closed by the company or the city office."),
        "company_rejected": N_("Closed because the company is no longer a host company."),
        "company_suspended": N_("Closed because the company's participation is suspended."),
    },
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
        "accepted": N_("Accepted by one side, waiting for the other"),
        "confirmed": N_("Confirmed"),
        "declined": N_("Declined"),
        "expired": N_("Expired"),
        "cancelled": N_("Cancelled"),
    },
    "placement_status": {
        "confirmed": N_("Confirmed"),
        "cancelled": N_("Cancelled"),
    },
    # Why a pending proposal was cancelled (match-cancelled).
    "match_cancel_reason": {
        "company_rejected": N_("The company is no longer a host company in the program."),
        "company_suspended": N_("The company's participation in the program is suspended."),
        "position_closed": N_("The position was closed."),
        "application_withdrawn": N_("The application was withdrawn."),
        "student_erased": N_("The student's data was erased at their request."),
        "consent_withdrawn": N_("The student withdrew consent to the use of their data."),
        "coordinator": N_("The city office cancelled it."),
    },
    # Why a confirmed placement was cancelled (placement-cancelled).
    "placement_cancel_reason": {
        "student_withdrew": N_("The student withdrew from the internship."),
        "company_withdrew": N_("The company withdrew from hosting the intern."),
        "program_decision": N_("A decision of the city office."),
        "other": N_("Another reason, recorded in the city office's case file."),
        "application_withdrawn": N_("The application was withdrawn before the confirmation."),
        "student_erased": N_("The student's data was erased at their request."),
        "consent_withdrawn": N_("The student withdrew consent to the use of their data."),
        "position_closed": N_("The position was closed before the confirmation."),
        "company_rejected": N_("The company is no longer a host company in the program."),
        "company_suspended": N_("The company's participation in the program is suspended."),
    },
    # What comes next for a student, by the state of their application.
    "application_next": {
        "submitted": N_(
            "You can change or withdraw it while the window is open. When it closes, the city "
            "office runs the match and you are told the result by e-mail."
        ),
        "proposed": N_(
            "Answer the proposal before the deadline. When you and the company both accept, "
            "the placement is confirmed."
        ),
        "placed": N_(
            "Your placement is confirmed. The city office and the company will contact you "
            "about the agreement, the residence status and your first day."
        ),
        "not_matched": N_(
            "The last round found no seat for you. You stay in the next rounds with your "
            "choices; there is nothing to do now."
        ),
        "declined": N_(
            "The proposal was declined. You stay in the next rounds for your other choices."
        ),
        "expired": N_(
            "The deadline passed before both sides accepted. You stay in the next rounds for "
            "your other choices."
        ),
        "cancelled": N_(
            "You stay in the next rounds for your other choices. The city office will contact "
            "you if anything is needed."
        ),
        "withdrawn": N_(
            "This application takes no part in matching. You can apply again while an "
            "application window is open."
        ),
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
    # The notifications service's e-mails, by template (its name before the recipient's
    # kind); in their own context, as names of e-mails ("Placement confirmed" is a state too).
    "message": {
        "answer_reminder": Nc_("e-mail", "Reminder of the deadline to answer"),
        "application_submitted": Nc_("e-mail", "Application received"),
        "application_withdrawn": Nc_("e-mail", "Application withdrawn"),
        "company_pending": Nc_("e-mail", "Company registration received"),
        "company_approved": Nc_("e-mail", "Company approved"),
        "company_rejected": Nc_("e-mail", "Company not approved"),
        "company_suspended": Nc_("e-mail", "Company suspended"),
        "internship_completed": Nc_("e-mail", "Internship completed"),
        "match_accepted": Nc_("e-mail", "Proposal accepted"),
        "match_cancelled": Nc_("e-mail", "Proposal cancelled"),
        "match_declined": Nc_("e-mail", "Proposal declined"),
        "match_expired": Nc_("e-mail", "Proposal expired"),
        "match_proposed": Nc_("e-mail", "Match proposed"),
        "not_matched": Nc_("e-mail", "Not matched in a round"),
        "placement_cancelled": Nc_("e-mail", "Placement cancelled"),
        "placement_confirmed": Nc_("e-mail", "Placement confirmed"),
        "round_completed": Nc_("e-mail", "Matching round completed"),
        "delivery_failures": Nc_("e-mail", "E-mails that could not be sent"),
        "notices_not_planned": Nc_("e-mail", "Notices that could not be prepared"),
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
        "withdrawn": N_("Application withdrawn"),
        "cancelled": N_("Proposal or placement cancelled"),
        "expired": N_("Proposal expired"),
        "declined": N_("Proposal declined"),
        "not_matched": N_("Not matched yet"),
        "applied": N_("Applied"),
        "proposed": N_("Proposal received"),
        "placed": N_("Placed"),
    },
    "roster_error": {
        "bad_email": N_("not a valid e-mail address"),
        "missing_columns": N_("needs e-mail, name and department"),
        "duplicate": N_("the address appears twice"),
        "too_many_rows": N_("too many rows; split the file"),
        "unreadable_csv": N_(
            "not readable as CSV from here on (a quotation mark left open?); the lines after "
            "it were not read"
        ),
        "no_file": N_("no file was chosen"),
        "not_text": N_('this file is not a text CSV; in Excel, save it as "CSV UTF-8"'),
        "unknown_encoding": N_(
            'cannot read the file\'s encoding; in Excel, save it as "CSV UTF-8"'
        ),
        "already_invited": N_("already invited from a roster; no second invitation"),
        "already_registered": N_("already registered on the portal; no invitation needed"),
        "address_in_use": N_(
            "this address belongs to someone else on the platform (a company contact or staff); "
            "not invited"
        ),
    },
}

JLPT = ("N1", "N2", "N3", "N4", "N5")
# The reasons a coordinator may give for cancelling a placement (the others are the platform's).
PLACEMENT_CANCEL_CHOICES = ("student_withdrew", "company_withdrew", "program_decision", "other")
ENGLISH = ("C2", "C1", "B2", "B1", "A2", "A1")


def label(kind: str, value: object) -> str:
    """The translated word for a code; the code itself when we have no word for it."""
    key = str(value).lower() if isinstance(value, bool) else str(value if value is not None else "")
    text = LABELS.get(kind, {}).get(key)
    if not text:
        return key
    return pgettext(CONTEXTS[kind], text) if kind in CONTEXTS else gettext(text)


def options(kind: str) -> list[tuple[str, str]]:
    return [(code, gettext(text)) for code, text in LABELS[kind].items() if code]


def company_name(company: dict[str, object] | None, language: str) -> str:
    """Japanese readers see the Japanese name, everyone else the English one."""
    if not company:
        return ""
    if language == "ja":
        return str(company.get("name_ja") or company.get("name_en") or "")
    return str(company.get("name_en") or company.get("name_ja") or "")


# Universities by the English name the services store, as each language writes them.
UNIVERSITY_NAMES = {
    "National Taipei University of Technology": {
        "zh-TW": "國立臺北科技大學",
        "ja": "国立台北科技大学",
    },
}


def university_name(name: str | None, language: str) -> str:
    """A university in the reader's language (a name we do not know, as it is stored)."""
    if not name:
        return ""
    return UNIVERSITY_NAMES.get(name, {}).get(language, name)
