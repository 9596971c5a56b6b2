"""Answers that cannot be taken back, and what the people who act on a placement need, in a
real browser. Declining a proposal takes two steps, for the student (on a phone, and without
JavaScript) and for the company: the Decline link opens a page that says what cannot be
undone, and Back leaves the proposal open; a decline posted without that confirmation
declines nothing; the student's university office then reads "declined", not "applied".
Closing a position asks once more too. The student's proposal page says what the intern will
do. A university office sees where its student is placed (company, position, dates, residence
status and the company's contact for the internship agreement), and nothing of another
university's student; the host company can write to its placed intern, not to one whose
placement was cancelled. The data up to the round is set up through the APIs."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, expect

from services.portal.i18n import translate_in
from shared.auth import Role
from shared.ids import new_id
from tests.browser.api import Api, portal_sub
from tests.browser.conftest import ARTIFACTS
from tests.browser.people import Album, Cast, sign_in_link
from tests.browser.stack import Stack

pytestmark = pytest.mark.browser
TAIPEI_TECH = "National Taipei University of Technology"
OTHER_UNIVERSITY = "National Cheng Kung University"
DESCRIPTION = "You write the test software of our inverter bench in Python, with our engineers."


def company_registration(tag: str, n: int) -> dict[str, Any]:
    return {
        "name_ja": f"戸畑電機{tag}{n}株式会社",
        "name_en": f"Tobata Electric {tag}{n}",
        "sector": "semiconductor",
        "ward": "Tobata-ku",
        "address": "2-3 Sensui",
        "contact": {
            "name": f"田中 美咲{n}",
            "email": f"hr{n}-{tag}@tobata.example",
            "preferred_language": "ja",
        },
    }


def position_body(cohort: str, title: str, capacity: int, paid: bool) -> dict[str, Any]:
    return {
        "cohort_id": cohort,
        "title": title,
        "description": DESCRIPTION,
        "track": "production_line",
        "capacity": capacity,
        "paid": paid,
        "start_date": "2027-07-01",
        "end_date": "2027-08-31",
        "location": "Tobata plant",
    }


def profile(name: str, email: str, university: str = TAIPEI_TECH) -> dict[str, Any]:
    return {
        "name": name,
        "email": email,
        "university": university,
        "department": "Electrical Engineering",
        "degree_program": "bachelor",
        "graduation_year": 2028,
        "jlpt_level": "N2",
        "available_from": "2027-06-01",
        "available_to": "2027-09-30",
        "consent_to_data_use": True,
        "preferred_language": "zh-TW",
    }


def assert_one_line(name: Locator) -> None:
    """The element's text takes one line, not a character or two per line."""
    box = name.bounding_box()
    line = name.evaluate("n => parseFloat(getComputedStyle(n).lineHeight)")
    assert box is not None and box["height"] < 1.5 * line, (box, line)


def proposal_now(api: Api, proposal_id: str) -> dict[str, Any]:
    return dict(api.coordinator("GET", f"/proposals/{proposal_id}", service="matching"))


def test_declining_asks_once_more(browser: Browser, stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    api = Api(stack)
    album = Album(ARTIFACTS / "answers")
    cohort = f"2027-answers-{tag}"
    api.open_cohort(cohort, "第5期生")
    company = api.approved_company(company_registration(tag, 0))
    position = api.publish_position(
        company["id"], position_body(cohort, f"Inverter test bench {tag}", 2, paid=False)
    )

    with Cast(browser, stack, album) as cast:
        # One student signs in on the portal (it gives them their id), on a phone in
        # Traditional Chinese; another applies through the API only.
        address = f"decliner-{tag}@ntut.edu.tw"
        student = cast.person("student", "zh-TW", phone=True)
        student.sign_in(address, "/student", "/student")
        sub = portal_sub(stack, address)
        application = {
            "cohort_id": cohort,
            "ranked_position_ids": [position["id"]],
            "motivation": "Power electronics.",
        }
        api.student_applies(sub, profile("林冠宇", address), application)
        other = new_id("stu")
        api.student_applies(other, profile("陳怡君", f"{other}@ntut.edu.tw"), application)
        api.close_and_run_round(cohort, pairs=2)
        proposals = {p["student_id"]: p for p in api.proposals(cohort)}
        mine, theirs = proposals[sub]["id"], proposals[other]["id"]

        # The student's proposal page says what the intern will do.
        page = student.visit(f"/student/proposals/{mine}", "proposal")
        expect(page.locator("#position-description")).to_have_text(DESCRIPTION)
        facts = page.locator("dl.facts")
        expect(facts).to_contain_text(company["name_en"])
        expect(facts).to_contain_text("Tobata plant")
        expect(facts).to_contain_text(translate_in("zh-TW", "Unpaid"))

        # Decline on the status page is a link to a page that asks once more.
        page = student.visit_until(
            "/student",
            "status-proposed",
            "#applications",
            translate_in("zh-TW", "Proposed a match"),
        )
        page.locator(f"#waiting-{mine} a[href*='/decline']").click()
        expect(page).to_have_url(re.compile(re.escape(f"/student/proposals/{mine}/decline?")))
        student.check("decline-confirm")
        expect(page.locator("#decline-consequences")).to_contain_text(
            translate_in(
                "zh-TW",
                "This cannot be undone: you cannot accept this proposal later, and this "
                "position will not be proposed to you again.",
            )
        )
        # A decline posted without the confirmation (an old page, another client) declines
        # nothing: it is sent to this page.
        token = page.locator("input[name=csrf_token]").first.get_attribute("value")
        response = page.request.post(
            f"/student/proposals/{mine}/decline",
            form={"csrf_token": str(token), "back": "/student"},
            max_redirects=0,
        )
        assert response.status == 303
        assert f"/student/proposals/{mine}/decline" in response.headers["location"]
        # Back: nothing changes, the proposal still waits for the answer.
        page.locator("form[action$='/decline'] a.button").click()
        expect(page).to_have_url(re.compile(r"/student$"))
        expect(page.locator(f"#waiting-{mine}")).to_be_visible()
        assert proposal_now(api, mine)["student_answer"] is None
        assert proposal_now(api, mine)["status"] == "proposed"

        # The company declines the other proposal: two steps too, Back first.
        hr = cast.person("company", "ja")
        proposal_page = f"/company/proposals/{theirs}"
        hr.sign_in(company["contact"]["email"], proposal_page, proposal_page)
        page = hr.page
        page.locator(f"a[href='{proposal_page}/decline']").click()
        expect(page).to_have_url(re.compile(re.escape(f"{proposal_page}/decline") + "$"))
        hr.check("decline-confirm")
        expect(page.locator("#decline-consequences")).to_contain_text(
            translate_in(
                "ja",
                "This cannot be undone: you cannot accept this proposal later, and this "
                "student will not be proposed for this position again.",
            )
        )
        page.locator("form[action$='/decline'] a.button").click()
        expect(page).to_have_url(re.compile(re.escape(proposal_page) + "$"))
        assert proposal_now(api, theirs)["status"] == "proposed"
        page.locator(f"a[href='{proposal_page}/decline']").click()
        hr.submit("form[action$='/decline'] button[name=confirmed]")
        expect(page).to_have_url(re.compile(re.escape(proposal_page) + "$"))
        expect(page.locator(".notice[role=status]")).to_be_visible()
        expect(page.locator("#proposal-status")).to_contain_text(translate_in("ja", "Declined"))
        hr.check("declined")
        assert proposal_now(api, theirs)["company_answer"] == "declined"

        # Closing the position cannot be undone either: asked once more; Back keeps it open.
        position_page = f"/company/positions/{position['id']}"
        page = hr.visit(position_page, "position")
        page.locator(f"a[href='{position_page}/close']").click()
        expect(page).to_have_url(re.compile(re.escape(f"{position_page}/close") + "$"))
        hr.check("close-confirm")
        expect(page.locator("main")).to_contain_text(
            translate_in("ja", "This cannot be undone: a closed position cannot be opened again.")
        )
        page.locator("form[action$='/close'] a.button").click()
        expect(page).to_have_url(re.compile(re.escape(position_page) + "$"))
        path = f"/positions/{position['id']}"
        assert api.coordinator("GET", path)["state"] == "open"

    # Without JavaScript: the same two steps, plain links and forms.
    context = browser.new_context(base_url=stack.portal_url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/student")
        page.fill("#email", address)
        after = time.time() - 1
        page.click("form[action='/sign-in'] button[type=submit]")
        page.goto(sign_in_link(stack.mailbox, address, after))
        page.click("form[action='/sign-in/verify'] button[type=submit]")
        expect(page).to_have_url(re.compile(r"/student$"))
        page.locator(f"#waiting-{mine} a[href*='/decline']").click()
        expect(page).to_have_url(re.compile(re.escape(f"/student/proposals/{mine}/decline?")))
        page.screenshot(path=str(album.path("student-nojs", "decline-confirm")), full_page=True)
        page.locator("form[action$='/decline'] a.button").click()
        expect(page).to_have_url(re.compile(r"/student$"))
        assert proposal_now(api, mine)["status"] == "proposed"
        page.locator(f"#waiting-{mine} a[href*='/decline']").click()
        page.click("form[action$='/decline'] button[name=confirmed]")
        expect(page).to_have_url(re.compile(r"/student$"))
        expect(page.locator(".notice[role=status]")).to_be_visible()
        expect(page.locator(f"#waiting-{mine}")).to_have_count(0)
        page.screenshot(path=str(album.path("student-nojs", "declined")), full_page=True)
    finally:
        context.close()
    declined = proposal_now(api, mine)
    assert (declined["status"], declined["student_answer"]) == ("declined", "declined")

    # The university office reads the student's stage as what happened: declined, not applied
    # (the application's status reaches the applications service by event).
    with Cast(browser, stack, album) as cast:
        office_email = f"office-{tag}@ntut.edu.tw"
        stack.add_user("university", office_email, university=TAIPEI_TECH)
        office = cast.person("university", "en")
        office.sign_in(office_email, "/university", "/university")
        row = f"#student-{sub}"
        page = office.visit_until("/university", "students", row, "Proposal declined")
        expect(page.locator(f"{row} td").nth(4)).to_have_text("Proposal declined")


def test_the_office_sees_where_its_student_is_placed(browser: Browser, stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    api = Api(stack)
    album = Album(ARTIFACTS / "agreements")
    cohort = f"2027-agreements-{tag}"
    api.open_cohort(cohort, "第6期生")
    # Two hosts, one seat each: our student's and the other university's student's.
    ours_host = api.approved_company(company_registration(tag, 1))
    their_host = api.approved_company(company_registration(tag, 2))
    ours_position = api.publish_position(
        ours_host["id"], position_body(cohort, f"Wafer inspection {tag}", 1, paid=True)
    )
    their_position = api.publish_position(
        their_host["id"], position_body(cohort, f"Press line {tag}", 1, paid=False)
    )
    ours, theirs = new_id("stu"), new_id("stu")
    ours_email, their_email = f"{ours}@ntut.edu.tw", f"{theirs}@ncku.example"
    for sub, email, name, university, position in (
        (ours, ours_email, "林冠宇", TAIPEI_TECH, ours_position),
        (theirs, their_email, "Chen Wei-Ting", OTHER_UNIVERSITY, their_position),
    ):
        api.student_applies(
            sub,
            profile(name, email, university),
            {
                "cohort_id": cohort,
                "ranked_position_ids": [position["id"]],
                "motivation": "Semiconductors.",
            },
        )
    api.close_and_run_round(cohort, pairs=2)
    hosts = {ours: ours_host["id"], theirs: their_host["id"]}
    for proposal in api.proposals(cohort):
        api.both_accept(proposal, hosts[proposal["student_id"]])
    placements = {
        p["student_id"]: p
        for p in api.coordinator("GET", f"/placements?cohort_id={cohort}", service="matching")
    }
    # The other student's placement is cancelled: its host no longer sees their address.
    api.call(
        "matching",
        "POST",
        f"/placements/{placements[theirs]['id']}/cancel",
        Role.COORDINATOR,
        "coordinator",
        {"reason": "student_withdrew"},
    )

    with Cast(browser, stack, album) as cast:
        office_email = f"office-{tag}@ntut.edu.tw"
        stack.add_user("university", office_email, university=TAIPEI_TECH)
        office = cast.person("university", "zh-TW")
        office.sign_in(office_email, "/university", "/university")
        # The placement reaches the applications service by event, a moment after it.
        page = office.visit_until(
            "/university", "students", f"#student-{ours}", translate_in("zh-TW", "Placed")
        )
        row = page.locator(f"#student-{ours}")
        expect(row).to_contain_text(ours_host["name_en"])
        expect(row).to_contain_text(ours_position["title"])
        expect(page.locator("main")).not_to_contain_text(their_host["name_en"])
        expect(page.locator(f"#student-{theirs}")).to_have_count(0)

        row.locator(f"a[href='/university/students/{ours}']").click()
        office.check("student-placed")
        (application,) = [
            a
            for a in api.coordinator("GET", f"/applications?cohort_id={cohort}")
            if a["student_id"] == ours
        ]
        card = page.locator(f"#match-{application['id']}")
        expect(card).to_contain_text(ours_host["name_en"])
        expect(card).to_contain_text(ours_position["title"])
        expect(card.locator(".match-residence")).to_have_text(
            translate_in(
                "zh-TW",
                "Designated Activities (特定活動, notice no. 9): a paid internship that is part "
                "of the curriculum; Taipei Tech and the host company sign an internship "
                "agreement.",
            )
        )
        contact = ours_host["contact"]
        expect(card.locator(".match-contact")).to_contain_text(contact["name"])
        expect(card.locator(f"a[href='mailto:{contact['email']}']")).to_be_visible()

        # Another university's office sees neither the student nor where they are placed.
        other_email = f"office-{tag}@ncku.example"
        stack.add_user("university", other_email, university=OTHER_UNIVERSITY)
        other = cast.person("other-university", "en")
        other.sign_in(other_email, "/university", "/university")
        main = other.page.locator("main")
        expect(main).not_to_contain_text(ours_email)
        expect(main).not_to_contain_text(ours_host["name_en"])
        expect(main).not_to_contain_text(contact["email"])
        response = other.page.goto(f"/university/students/{ours}")
        assert response is not None and response.status == 404

        # The host writes to its placed intern from the interns table.
        host = cast.person("company", "ja", phone=True)
        host.sign_in(contact["email"], "/company/placements", "/company/placements")
        host.check("interns")
        intern = host.page.locator(f"#placement-{placements[ours]['id']} td.person")
        expect(intern.locator(f"a[href='mailto:{ours_email}']")).to_have_text(ours_email)
        assert_one_line(intern.locator(".name"))

        # A cancelled placement's host does not get the student's address.
        their_hr = cast.person("company-cancelled", "ja", phone=True)
        their_hr.sign_in(
            their_host["contact"]["email"], "/company/placements", "/company/placements"
        )
        their_hr.check("interns-cancelled")
        row = their_hr.page.locator(f"#placement-{placements[theirs]['id']}")
        expect(row).to_contain_text(translate_in("ja", "Cancelled"))
        expect(row.locator("a[href^='mailto:']")).to_have_count(0)
        expect(their_hr.page.locator("main")).not_to_contain_text(their_email)
        # On a phone, beside the long residence guidance, the name stays on one line.
        assert_one_line(row.locator("td.person .name"))
