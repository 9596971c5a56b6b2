"""Cancellations as each party sees them, in a real browser. The coordinator cancels a
confirmed placement on its form (reason and case file reference, confirmed on the page) and a
proposal still waiting for answers; the student and the company follow the links in the mails
that tell them, each in their own language, and read what happened with the reason in words.
The data up to the round is set up through the APIs (the walk-through covers those pages)."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from playwright.sync_api import Browser, expect

from services.portal.i18n import translate_in
from tests.browser.api import Api, portal_sub
from tests.browser.conftest import ARTIFACTS
from tests.browser.people import Album, Cast, Person
from tests.browser.stack import Stack

pytestmark = pytest.mark.browser
STUDENT_LINK = re.compile(r"https?://[^\s/]+/student(?=\s|$)")
COMPANY_PLACEMENTS_LINK = re.compile(r"https?://[^\s/]+/company/placements(?=\s|$)")
NOTE_CODE = "KK-2027-014"


def test_cancellations_are_explained_to_every_party(browser: Browser, stack: Stack) -> None:
    started = time.monotonic()
    tag = uuid.uuid4().hex[:6]
    api = Api(stack)
    album = Album(ARTIFACTS / "cancellations")
    cohort = f"2027-cancellations-{tag}"
    api.open_cohort(cohort, "第3期生")
    company = api.approved_company(
        {
            "name_ja": f"戸畑電機{tag}株式会社",
            "name_en": f"Tobata Electric {tag}",
            "sector": "semiconductor",
            "ward": "Tobata-ku",
            "address": "2-3 Sensui",
            "contact": {
                "name": "田中 美咲",
                "email": f"hr-{tag}@tobata.example",
                "preferred_language": "ja",
            },
        },
    )
    position = api.publish_position(
        company["id"],
        {
            "cohort_id": cohort,
            "title": f"Inverter test bench {tag}",
            "track": "production_line",
            "capacity": 2,
            "paid": True,
            "start_date": "2027-07-01",
            "end_date": "2027-08-31",
            "location": "Tobata plant",
        },
    )

    with Cast(browser, stack, album) as cast:
        # Two students sign in on the portal (it gives them their ids) and apply; one reads
        # the portal in Traditional Chinese on a phone, the other in English.
        students: dict[str, tuple[Person, str, str]] = {}
        for name, language in (("placed", "zh-TW"), ("proposed", "en")):
            address = f"{name}-{tag}@ntut.edu.tw"
            student = cast.person(f"student-{name}", language, phone=name == "placed")
            student.sign_in(address, "/student", "/student")
            sub = portal_sub(stack, address)
            api.student_applies(
                sub,
                {
                    "name": "林冠宇" if name == "placed" else "陳怡君",
                    "email": address,
                    "department": "Electrical Engineering",
                    "degree_program": "bachelor",
                    "graduation_year": 2028,
                    "jlpt_level": "N2",
                    "available_from": "2027-06-01",
                    "available_to": "2027-09-30",
                    "consent_to_data_use": True,
                    "preferred_language": language,
                },
                {
                    "cohort_id": cohort,
                    "ranked_position_ids": [position["id"]],
                    "motivation": "Power electronics.",
                },
            )
            students[name] = (student, address, sub)
        api.close_and_run_round(cohort, pairs=2)
        proposals = {p["student_id"]: p for p in api.proposals(cohort)}
        _, placed_address, placed_sub = students["placed"]
        _, _, proposed_sub = students["proposed"]
        confirmed = proposals[placed_sub]
        waiting = proposals[proposed_sub]
        # Both parties accept the first proposal: a confirmed placement.
        api.both_accept(confirmed, company["id"])
        rows = api.coordinator("GET", f"/placements?cohort_id={cohort}", service="matching")
        (placement_id,) = [p["id"] for p in rows if p["student_id"] == placed_sub]

        coordinator = cast.person("coordinator", "en")
        email = f"canceller-{tag}@city.kitakyushu.example"
        stack.add_user("coordinator", email)
        coordinator.sign_in(email, "/coordinator", "/coordinator")

        # The placement: from the cohort's placements, to its form, confirmed with a reason.
        cancel_page = f"/coordinator/placements/{placement_id}/cancel"
        page = coordinator.visit(f"/coordinator/cohorts/{cohort}?tab=placements", "placements")
        page.locator(f"#placement-table a[href='{cancel_page}']").click()
        expect(page).to_have_url(re.compile(re.escape(cancel_page) + "$"))
        coordinator.check("cancel-placement")
        expect(page.locator("main")).to_contain_text(
            translate_in(
                "en", "The student and the company are told by e-mail, with the reason you choose."
            )
        )
        page.check("input[name=reason][value=company_withdrew]")
        page.fill("#note_code", NOTE_CODE)
        cancelled_at = time.time() - 1
        coordinator.submit("form[action$='/cancel'] button[name=confirmed]")
        expect(page).to_have_url(re.compile(r"tab=placements$"))
        # The notice names the student, not the placement's id.
        notice = page.locator(".notice[role=status]")
        expect(notice).to_contain_text("林冠宇")
        expect(notice).not_to_contain_text(placement_id)
        expect(page.locator("#placement-table")).to_contain_text(
            translate_in("en", "The company withdrew from hosting the intern.")
        )
        coordinator.check("placement-cancelled")
        # Once cancelled, the form says so instead of offering to cancel again.
        page = coordinator.visit(cancel_page, "cancel-placement-again")
        expect(page.locator("main")).to_contain_text(
            translate_in("en", "This placement is cancelled already.")
        )

        # The proposal still waiting for answers: cancelled on its confirmation page.
        page = coordinator.visit(
            f"/coordinator/proposals/{waiting['id']}/cancel", "cancel-proposal"
        )
        coordinator.submit("form[action$='/cancel'] button[name=confirmed]")
        expect(page.locator(".notice[role=status]")).to_contain_text("陳怡君")

        # The placed student opens the mail's link on their phone and reads it in Chinese.
        placed = cast.person("student-placed-mail", "zh-TW", phone=True)
        placed.follow_mail(placed_address, STUDENT_LINK, cancelled_at)
        placed.check("status-placement-cancelled")
        card = placed.page.locator(f"#placement-{placement_id}")
        expect(card).to_contain_text(
            translate_in("zh-TW", "The company withdrew from hosting the intern.")
        )
        expect(card).to_contain_text(NOTE_CODE)

        # The company opens its mail's link and reads it in Japanese, then the proposal.
        hr = cast.person("company", "ja")
        hr.follow_mail(company["contact"]["email"], COMPANY_PLACEMENTS_LINK, cancelled_at)
        hr.check("placements-cancelled")
        table = hr.page.locator("table")
        expect(table).to_contain_text(
            translate_in("ja", "The company withdrew from hosting the intern.")
        )
        expect(table).to_contain_text(NOTE_CODE)
        page = hr.visit(f"/company/proposals/{waiting['id']}", "proposal-cancelled")
        expect(page.locator("#proposal-status")).to_contain_text(
            translate_in("ja", "The city office cancelled it.")
        )
        expect(page.locator("form[action$='/accept']")).to_have_count(0)

        # The other student reads the cancelled proposal on their status page, in English.
        proposed, _, _ = students["proposed"]
        page = proposed.visit_until(
            "/student",
            "status-proposal-cancelled",
            "main",
            translate_in("en", "The city office cancelled it."),
        )
        expect(
            page.locator(f"form[action='/student/proposals/{waiting['id']}/accept']")
        ).to_have_count(0)
    print(f"\ncancellations: {album.count} pages in {time.monotonic() - started:.1f}s")
