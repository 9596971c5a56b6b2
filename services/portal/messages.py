"""What every action confirms: what happened, and what comes next (translated when shown)."""

from __future__ import annotations

from services.portal.i18n import N_, Np_

# key -> (what happened, what comes next); a plural message agrees with its `count`.
CONFIRMATIONS: dict[str, tuple[str | tuple[str, str], str]] = {
    "signed_in": (
        N_("You are signed in."),
        N_("Your session ends after an hour without activity, or when you sign out."),
    ),
    "cohort_created": (
        N_("The cohort “%(cohort)s” was created as a draft."),
        N_("Open its application window when the host companies have published positions."),
    ),
    "cohort_open": (
        N_("The application window of “%(cohort)s” is open."),
        N_("Approved companies can publish positions and students can apply until you close it."),
    ),
    "cohort_reopen": (
        N_("The application window of “%(cohort)s” is open again."),
        N_(
            "Students can apply and change their applications until you close it again. Once "
            "a round has run, the window cannot be reopened."
        ),
    ),
    "cohort_close": (
        N_("The application window of “%(cohort)s” is closed."),
        N_("Check the round preview, then run a match round."),
    ),
    "cohort_finish": (
        N_("The cohort “%(cohort)s” is finished."),
        N_("No further rounds can run; the placements stay as they are."),
    ),
    "company_approved": (
        N_("%(company)s is approved as a host company."),
        N_("Its contact can now sign in with their e-mail address and publish positions."),
    ),
    "company_rejected": (
        N_("%(company)s is rejected as a host company."),
        N_(
            "Its open positions are closed and their pending proposals cancelled; the company "
            "is told by e-mail. You can approve it later if the decision changes."
        ),
    ),
    "company_suspended": (
        N_("%(company)s is suspended."),
        N_(
            "Its open positions are closed and their pending proposals cancelled; the company "
            "is told by e-mail. Approve it again to end the suspension."
        ),
    ),
    "proposal_cancelled": (
        N_("The proposal to %(student)s is cancelled."),
        N_("The student and the company are told by e-mail; the seat is free for the next round."),
    ),
    "placement_cancelled": (
        N_("The placement of %(student)s is cancelled."),
        N_(
            "The student and the company are told by e-mail, with the reason; the seat is free "
            "for the next round."
        ),
    ),
    "round_run": (
        Np_(
            "Round %(round)s proposed %(count)s match.",
            "Round %(round)s proposed %(count)s matches.",
        ),
        N_("Students and companies have been told; each side answers before the deadline."),
    ),
    "mail_settings_saved": (
        N_("Your e-mail settings are saved."),
        N_("The program's next e-mails follow them."),
    ),
    "delivery_retried": (
        N_("The message will be sent again."),
        N_("Its status changes to sent when the mail server accepts it."),
    ),
    "position_published": (
        N_("Your position “%(title)s” is published."),
        N_("Students can find it and apply while the application window is open."),
    ),
    "position_edited": (
        N_("Your position “%(title)s” is updated."),
        N_("Students see the changes at once, and the next match round uses them."),
    ),
    "position_closed": (
        N_("The position “%(title)s” is closed."),
        N_("It takes no new applications and will not be matched."),
    ),
    "ranking_saved": (
        Np_(
            "Your ranking of %(count)s applicant is saved.",
            "Your ranking of %(count)s applicants is saved.",
        ),
        N_("The city office uses it in the next match round. You can change it until then."),
    ),
    "proposal_accepted": (
        N_("You accepted the proposal."),
        N_("When the other side accepts too, the placement is confirmed and you are told."),
    ),
    "proposal_declined": (
        N_("You declined the proposal."),
        N_("The seat is free again; the next match round can fill it."),
    ),
    "proposal_declined_student": (
        N_("You declined the proposal."),
        N_(
            "You stay in the next match rounds for your other choices; this position will not "
            "be proposed to you again."
        ),
    ),
    "contact_saved": (
        N_("Your contact details are saved."),
        N_(
            "The program's messages go to this address, in this language, with dates and "
            "times in this time zone."
        ),
    ),
    "profile_saved": (
        N_("Your profile is saved."),
        N_("Browse the positions and build your ranked application."),
    ),
    "consent_withdrawn": (
        N_("Your consent is withdrawn."),
        N_(
            "You will not be matched. Your profile stays until you erase it; give consent "
            "again to take part."
        ),
    ),
    "application_added": (
        N_("“%(title)s” is on your application list."),
        N_("Order the list by preference and send it from your application page."),
    ),
    "application_sent": (
        Np_(
            "Your application with %(count)s position is sent.",
            "Your application with %(count)s positions is sent.",
        ),
        N_(
            "You can change it while the window is open. After it closes the city office "
            "runs the match and you will be told the result by e-mail."
        ),
    ),
    "application_withdrawn": (
        N_("Your application is withdrawn."),
        N_(
            "It takes no part in matching from now on, and a proposal still waiting for answers "
            "is cancelled. You can apply again while the window is open."
        ),
    ),
    "roster_uploaded": (
        Np_("%(count)s student was invited.", "%(count)s students were invited."),
        N_(
            "Their invitations are being sent in the background; each student can then sign "
            "in with their address. This page shows how many have gone out."
        ),
    ),
    "erased": (
        N_("Your data has been erased."),
        N_("Your profile, applications and contact details are deleted; you are signed out."),
    ),
    "signed_out": (
        N_("You are signed out."),
        N_("Sign in again with a new link from your e-mail."),
    ),
}
