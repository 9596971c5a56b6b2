"""The coordinator's decisions that take something away, in a real browser, in each language:
cancelling a proposal and suspending a company are confirmed on a page of their own first
(what it does, who is told), then the student reads the cancellation with its reason in words
on their status page, and the company follows the link in the mail about its suspension and
reads it on its page. A university office sees only its
own university's students; another's is "not found". The data is set up through the APIs,
so that this test spends its time on the pages the walk-through does not reach."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from playwright.sync_api import Browser, expect

from services.portal.i18n import translate_in
from tests.browser.api import Api, portal_sub
from tests.browser.conftest import ARTIFACTS
from tests.browser.people import Album, Cast
from tests.browser.stack import Stack

pytestmark = pytest.mark.browser
LANGUAGES = ("en", "zh-TW", "ja")
COMPANY_LINK = re.compile(r"https?://[^\s/]+/company(?=\s|$)")


def test_the_coordinators_decisions_are_confirmed_and_explained(
    browser: Browser, stack: Stack
) -> None:
    started = time.monotonic()
    tag = uuid.uuid4().hex[:6]
    api = Api(stack)
    album = Album(ARTIFACTS / "decisions")
    cohort = f"2027-decisions-{tag}"
    api.open_cohort(cohort, "第2期生")
    companies = []
    for n, language in enumerate(("en", "ja")):
        company = api.approved_company(
            {
                "name_ja": f"若松精機{tag}{n}株式会社",
                "name_en": f"Wakamatsu Precision {tag}{n}",
                "sector": "automotive",
                "ward": "Wakamatsu-ku",
                "address": "1-1 Hibikino",
                "contact": {
                    "name": "佐藤 一郎",
                    "email": f"hr{n}-{tag}@wakamatsu.example",
                    "preferred_language": language,
                },
            },
        )
        companies.append(company)
    hosting, suspended = companies
    position = api.publish_position(
        hosting["id"],
        {
            "cohort_id": cohort,
            "title": f"Gearbox test rig {tag}",
            "track": "production_line",
            "capacity": 1,
            "paid": True,
            "start_date": "2027-07-01",
            "end_date": "2027-08-31",
            "location": "Wakamatsu plant",
        },
    )
    api.publish_position(
        suspended["id"],
        {
            "cohort_id": cohort,
            "title": f"Press line automation {tag}",
            "track": "production_line",
            "capacity": 2,
            "paid": False,
            "start_date": "2027-07-01",
            "end_date": "2027-08-20",
            "location": "Tobata plant",
        },
    )

    with Cast(browser, stack, album) as cast:
        # A student signs in on the portal (it gives them their id) and applies.
        address = f"decisions-{tag}@ntut.edu.tw"
        student = cast.person("student", "en", phone=True)
        student.sign_in(address, "/student", "/student")
        sub = portal_sub(stack, address)
        api.student_applies(
            sub,
            {
                "name": "黃詩涵",
                "email": address,
                "department": "Mechanical Engineering",
                "degree_program": "bachelor",
                "graduation_year": 2028,
                "jlpt_level": "N2",
                "available_from": "2027-06-01",
                "available_to": "2027-09-30",
                "consent_to_data_use": True,
            },
            {"cohort_id": cohort, "ranked_position_ids": [position["id"]], "motivation": "Gears."},
        )
        api.close_and_run_round(cohort, pairs=1)
        (proposal,) = api.proposals(cohort)

        coordinator = cast.person("coordinator", "en")
        email = f"decider-{tag}@city.kitakyushu.example"
        stack.add_user("coordinator", email)
        coordinator.sign_in(email, "/coordinator", "/coordinator")

        # Each confirmation page, in each language (switched on the page, as a person would).
        cancel_page = f"/coordinator/proposals/{proposal['id']}/cancel"
        suspend_page = f"/coordinator/companies/{suspended['id']}/suspend"
        for language in LANGUAGES:
            coordinator.switch_language(language)
            page = coordinator.visit(
                f"/coordinator/cohorts/{cohort}?tab=proposals", f"proposals-{language}"
            )
            expect(page.locator(f"#proposal-table a[href='{cancel_page}']")).to_be_visible()
            page = coordinator.visit(cancel_page, f"cancel-proposal-{language}")
            expect(page.locator("main")).to_contain_text(
                translate_in(
                    language,
                    "The student and the company are told by e-mail that the city office "
                    "cancelled it.",
                )
            )
            page = coordinator.visit(
                "/coordinator/companies?status=approved", f"companies-{language}"
            )
            page = coordinator.visit(suspend_page, f"suspend-company-{language}")
            expect(page.locator("main")).to_contain_text(f"Press line automation {tag}")

        # Confirmed in the last language: the proposal is cancelled, with the reason in words.
        page = coordinator.visit(cancel_page, "cancel-proposal")
        coordinator.submit("form[action$='/cancel'] button[name=confirmed]")
        expect(page).to_have_url(re.compile(r"tab=proposals$"))
        # The notice names the student, not the proposal's id.
        notice = page.locator(".notice[role=status]")
        expect(notice).to_contain_text("黃詩涵")
        expect(notice).not_to_contain_text(proposal["id"])
        row = page.locator(f"#proposal-{proposal['id']}")
        expect(row).to_contain_text(translate_in("ja", "The city office cancelled it."))
        coordinator.check("proposal-cancelled")

        page = coordinator.visit(suspend_page, "suspend-company")
        suspended_at = time.time() - 1
        coordinator.submit("form[action$='/suspend'] button[name=confirmed]")
        expect(page.locator(".notice[role=status]")).to_contain_text(suspended["name_ja"])
        coordinator.check("company-suspended")

        # The student reads the cancellation in words, in each language.
        for language in LANGUAGES:
            student.switch_language(language)
            page = student.visit_until(
                "/student",
                f"status-cancelled-{language}",
                "#applications li.card .application-state",
                translate_in(language, "Cancelled"),
            )
            card = page.locator("#applications li.card")
            expect(card.locator(".application-state")).to_have_text(
                translate_in(language, "Cancelled")
            )
            expect(card).to_contain_text(translate_in(language, "The city office cancelled it."))
        page = student.visit(f"/student/proposals/{proposal['id']}", "proposal-cancelled")
        expect(page.locator("#proposal-status")).to_contain_text(
            translate_in("ja", "The city office cancelled it.")
        )

        # The suspended company opens the link in the mail that tells it (signing in first)
        # and reads what happened, in its language.
        company = cast.person("company", "ja")
        company.follow_mail(suspended["contact"]["email"], COMPANY_LINK, suspended_at)
        company.check("overview-suspended")
        page = company.page
        expect(page.locator("main")).to_contain_text(translate_in("ja", "Suspended"))
        page = company.visit("/company/positions", "positions-closed")
        expect(page.locator("table")).to_contain_text(translate_in("ja", "Closed"))

        # University offices: each sees its own university's students only.
        ours = f"ntut-{tag}@ntut.edu.tw"
        theirs = f"other-{tag}@other-university.example"
        stack.add_user("university", ours)
        stack.add_user(
            "university", theirs, university="National Taiwan University of Science and Technology"
        )
        office = cast.person("university", "en")
        office.sign_in(ours, "/university", "/university")
        expect(office.page.locator("table")).to_contain_text(address)
        office.visit(f"/university/students/{sub}", "student")
        other = cast.person("other-university", "en")
        other.sign_in(theirs, "/university", "/university")
        expect(other.page.locator("table")).not_to_contain_text(address)
        response = other.page.goto(f"/university/students/{sub}")
        assert response is not None and response.status == 404
        other.check("not-yours")
    print(f"\ndecisions: {album.count} pages in {time.monotonic() - started:.1f}s")
