"""A first season as first-time users see it, in a fresh Chromium each: no console error on any
page (the favicon is there, the cohort-id pattern is valid), the public call's ward is a list of
Kitakyushu's wards in the reader's language, skills read as people typed them, a company's first
visit to its applicants says that the order is not saved, a phone folds the filters and the
student's status page leads with the placement, the coordinator's dashboard says whether
another round can place anyone and the round page leads with its outcome. No page and no mail
shows an internal id: people see names. The data up to each page is set up through the APIs."""

from __future__ import annotations

import email
import email.policy
import re
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.browser.api import Api, portal_sub
from tests.browser.conftest import ARTIFACTS
from tests.browser.people import Album, Cast, Person
from tests.browser.stack import Stack

pytestmark = pytest.mark.browser
# The platform's ids (students, companies, positions, rounds, proposals, placements,
# applications): none may reach the text a person reads.
WARDS_JA = ["門司区", "小倉北区", "小倉南区", "若松区", "八幡東区", "八幡西区", "戸畑区"]
INTERNAL_ID = re.compile(r"\b(?:stu|co|pos|rnd|round|prop|plc|app)-[0-9a-f]{4,}")
# E-mail addresses are what people typed (the other browser tests of the same stack register
# students as `<their id>@ntut.edu.tw`): read past them.
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def watch_console(person: Person, errors: list[str]) -> None:
    """Keep every console error and uncaught exception of the person's pages."""

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{person.who} {person.page.url}: {message.text}")

    person.page.on("console", on_console)
    person.page.on("pageerror", lambda exc: errors.append(f"{person.who}: {exc}"))


def assert_no_ids(page: Page, cohort_id: str) -> None:
    text = EMAIL.sub("<address>", page.locator("body").inner_text())
    assert not INTERNAL_ID.findall(text), (page.url, INTERNAL_ID.findall(text))
    assert cohort_id not in text, (page.url, "shows the cohort id")


def mails_since(mailbox: Path, after: float, tag: str) -> list[tuple[str, str, str]]:
    """(template, subject, body) of every mail of this test (its addresses or texts carry
    `tag`); the portal's own mails (sign-in links) have no template."""
    out = []
    for path in mailbox.glob("*.eml"):
        if path.stat().st_mtime < after:
            continue
        with path.open("rb") as f:
            message = email.message_from_binary_file(f, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body else ""  # type: ignore[union-attr]
        subject = str(message["Subject"])
        if tag in str(message["To"]) or tag in text or tag in subject:
            out.append((str(message["X-Template"] or ""), subject, text))
    return out


def test_a_first_season_shows_names_and_next_steps(browser: Browser, stack: Stack) -> None:
    started = time.time() - 1
    tag = uuid.uuid4().hex[:6]
    api = Api(stack)
    album = Album(ARTIFACTS / "first-season")
    cohort = f"2027-first-{tag}"
    cohort_name = f"第5期生（{tag}）"
    errors: list[str] = []
    api.open_cohort(cohort, cohort_name)
    company_email = f"hr-{tag}@moji.example"
    company = api.approved_company(
        {
            "name_ja": f"門司精機{tag}株式会社",
            "name_en": f"Moji Precision {tag}",
            "sector": "automotive",
            "ward": "Moji-ku",
            "address": "1-2 Nishikaigan",
            "contact": {"name": "中村 陽子", "email": company_email, "preferred_language": "ja"},
        },
    )
    title = f"Vision inspection {tag}"
    position = api.publish_position(
        company["id"],
        {
            "cohort_id": cohort,
            "title": title,
            "track": "production_line",
            "capacity": 1,
            "required_skills": ["OpenCV", "PLC"],
            "paid": True,
            "start_date": "2027-07-01",
            "end_date": "2027-08-31",
            "location": "Moji plant",
        },
    )

    with Cast(browser, stack, album) as cast:
        # -- a visitor's fresh browser: the favicon, the public call in Japanese ----------
        visitor = cast.person("visitor", "ja")
        watch_console(visitor, errors)
        page = visitor.visit("/", "program")
        icon = page.locator("link[rel=icon]").get_attribute("href")
        assert icon
        for path in ("/favicon.ico", icon):
            answer = page.request.get(path)
            assert answer.status == 200, path
            assert answer.headers["content-type"].startswith("image/svg+xml")
        page = visitor.visit("/call", "call")
        wards = page.locator("#ward option").all_inner_texts()
        assert wards[1:] == WARDS_JA
        page.fill("#name_ja", f"戸畑工業{tag}株式会社")
        page.fill("#name_en", f"Tobata Industries {tag}")
        page.select_option("#sector", "semiconductor")
        page.select_option("#ward", label="戸畑区")
        page.fill("#address", "1-1 Sensui")
        page.fill("#contact_name", "木村 健")
        page.fill("#contact_email", f"call-{tag}@tobata.example")
        visitor.submit("form[action='/call'] button[type=submit]")
        name = f"戸畑工業{tag}株式会社"
        registered = [c for c in api.coordinator("GET", "/companies") if c["name_ja"] == name]
        assert [c["ward"] for c in registered] == ["Tobata-ku"]  # what the API has always stored

        # -- the student registers on a phone and applies ---------------------------------
        student_email = f"first-{tag}@ntut.edu.tw"
        student_name = f"林柏維{tag}"
        student = cast.person("student", "zh-TW", phone=True)
        watch_console(student, errors)
        student.sign_in(student_email, "/student", "/student")
        sub = portal_sub(stack, student_email)
        api.student_applies(
            sub,
            {
                "name": student_name,
                "email": student_email,
                "department": "Mechanical Engineering",
                "degree_program": "master",
                "graduation_year": 2028,
                "jlpt_level": "N2",
                "skills": ["OpenCV", "PLC", "C", "opencv"],
                "available_from": "2027-06-01",
                "available_to": "2027-09-30",
                "consent_to_data_use": True,
                "preferred_language": "zh-TW",
            },
            {"cohort_id": cohort, "ranked_position_ids": [position["id"]], "motivation": "PLC"},
        )
        # Seven filters would fill the phone's first screen: folded, and open on request.
        page = student.visit("/student/positions", "positions")
        box = page.locator("details.filter-box")
        expect(box).not_to_have_attribute("open", re.compile(".*"))
        expect(page.locator("#q")).to_be_hidden()
        box.locator("summary").click()
        page.fill("#q", tag)
        student.submit("details.filter-box button[type=submit]")
        expect(page.locator("details.filter-box")).to_have_attribute("open", "")  # in use
        card = page.locator("li.card", has_text=title)
        expect(card).to_contain_text("OpenCV、PLC")  # as the company typed them

        # -- the company's first visit to its applicants: nothing is ranked yet -----------
        firm = cast.person("company", "ja")
        watch_console(firm, errors)
        applicants = f"/company/positions/{position['id']}/applicants"
        firm.sign_in(company_email, applicants, applicants)
        page = firm.page
        firm.check("applicants-first-visit")
        expect(page.locator("#not-ranked")).to_contain_text("まだ保存されていません")
        expect(page.locator("#ranking .badge")).to_have_text(["順位未設定"])
        expect(page.locator("#ranking")).to_contain_text("OpenCV、PLC、C")  # as typed
        expect(page.locator("#ranking")).not_to_contain_text("opencv")
        assert_no_ids(page, cohort)
        page.click("#save-ranking")
        expect(page.locator(".notice[role=status]")).to_be_visible()
        expect(page.locator("#not-ranked")).to_have_count(0)
        expect(page.locator("#ranking .badge")).to_have_count(0)
        page = firm.visit("/company/positions", "positions")
        expect(page.locator("table")).to_contain_text(cohort_name)
        assert_no_ids(page, cohort)
        assert_no_ids(firm.visit("/company", "overview"), cohort)

        # A coordinator the operator adds gets the program's mails (placements among them).
        coordinator_email = f"coordinator-{tag}@city.kitakyushu.example"
        stack.add_user("coordinator", coordinator_email)

        # -- the round, then both accept: the only seat is taken --------------------------
        api.close_and_run_round(cohort, pairs=1)
        (proposal,) = api.proposals(cohort)
        api.both_accept(proposal, company["id"])
        # The company tells its proposals apart by the student's name, never by an id.
        page = firm.visit("/company", "overview-after-round")
        expect(page.locator("table")).to_contain_text(student_name)
        assert_no_ids(page, cohort)

        coordinator = cast.person("coordinator", "ja")
        watch_console(coordinator, errors)
        coordinator.sign_in(coordinator_email, "/coordinator", "/coordinator")
        page = coordinator.page
        # The cohort id's pattern is one Chromium accepts (an invalid one is ignored, with a
        # console error), so the browser checks the field before sending.
        valid = page.evaluate(
            """() => { const f = document.getElementById('cohort_id');
                       const ok = v => { f.value = v; return f.checkValidity(); };
                       return [ok('2027-summer'), ok('2027-summer-2'), ok('2027_Summer'),
                               ok('2027-')]; }"""
        )
        assert valid == [True, True, False, False]
        # Every seat is taken and every proposal answered: no round is offered as the main
        # step, the counts say why, and finishing is the main step.
        # (The cohort's state reaches the applications service by event, after the round.)
        deadline = time.monotonic() + 30
        page.goto("/coordinator?state=matching")
        while not page.locator(f"#outlook-{cohort}").count():
            assert time.monotonic() < deadline, "the cohort never showed as matching"
            time.sleep(0.5)
            page.reload()
        coordinator.check("dashboard-settled")
        outlook = page.locator(f"#outlook-{cohort}")
        expect(outlook).to_contain_text("空き枠：0")
        expect(outlook).to_contain_text("回答待ち：0")
        expect(outlook).to_contain_text("新たな提案はありません")
        row = page.locator("tr", has=outlook)
        expect(row.locator("a.button:not(.secondary)", has_text="マッチング")).to_have_count(0)
        expect(row.locator(f"a.button[href$='/{cohort}/finish']")).not_to_have_class(
            re.compile("secondary")
        )
        assert_no_ids(page, cohort)

        # The round page leads with what it did and what comes next; hash and seed below.
        (round_,) = api.coordinator("GET", f"/rounds?cohort_id={cohort}", service="matching")
        page = coordinator.visit(f"/coordinator/rounds/{round_['id']}", "round")
        outcome = page.locator("#round-outcome")
        expect(outcome).to_contain_text(student_name)
        expect(outcome).to_contain_text("今後の流れ")
        expect(page.locator("h1")).to_contain_text(cohort_name)
        technical = page.locator("#technical")
        expect(technical).not_to_have_attribute("open", re.compile(".*"))
        expect(page.get_by_text(round_["input_hash"])).to_be_hidden()
        outcome_box, technical_box = outcome.bounding_box(), technical.bounding_box()
        assert outcome_box and technical_box and outcome_box["y"] < technical_box["y"]
        assert_no_ids(page, cohort)

        page = coordinator.visit(f"/coordinator/cohorts/{cohort}?tab=proposals", "proposals")
        expect(page.locator("#proposal-table")).to_contain_text("第1回マッチング")
        assert_no_ids(page, cohort)
        page = coordinator.visit(f"/coordinator/cohorts/{cohort}", "cohort")
        expect(page.locator("#no-round-needed")).to_be_visible()
        assert_no_ids(page, cohort)
        # Mails not sent yet have no address: the recipient is named, never by id.
        page = coordinator.visit(f"/coordinator/deliveries?cohort={cohort}", "deliveries")
        expect(page.locator("table")).to_contain_text(student_name)
        expect(page.locator("#q")).to_be_visible()  # a wide screen shows the filters open
        assert_no_ids(page, cohort)

        # -- the student's status page leads with the placement --------------------------
        page = student.visit("/student", "status-placed")
        placement = page.locator("section[aria-labelledby=placements]")
        expect(placement).to_contain_text(title)
        for later in ("#answers", "#apps", "details.filter-box"):
            other = page.locator(later).first.bounding_box()
            mine = placement.bounding_box()
            assert mine and other and mine["y"] < other["y"], later
        expect(page.locator("#applications")).to_contain_text(cohort_name)
        assert_no_ids(page, cohort)

        # -- the university office names the university and the cohort ------------------
        office = cast.person("university", "zh-TW")
        watch_console(office, errors)
        office_email = f"office-{tag}@ntut.edu.tw"
        stack.add_user("university", office_email)
        office.sign_in(office_email, "/university", "/university")
        page = office.page
        expect(page.locator("main")).to_contain_text("國立臺北科技大學")
        expect(page.locator("main")).not_to_contain_text("National Taipei University")
        expect(page.locator("tr", has_text=student_email)).to_contain_text(cohort_name)
        assert_no_ids(page, cohort)

    assert not errors, errors

    # -- and no mail of the season names anyone or anything by id --------------------------
    deadline = time.monotonic() + 30
    expected = {
        "application_submitted.student",
        "match_proposed.student",
        "match_proposed.company",
        "placement_confirmed.student",
        "placement_confirmed.company",
        "placement_confirmed.coordinator",
    }
    while True:
        mails = mails_since(stack.mailbox, started, tag)
        if expected <= {template for template, _, _ in mails}:
            break
        assert time.monotonic() < deadline, sorted(t for t, _, _ in mails)
        time.sleep(0.5)
    for template, subject, body in mails:
        readable = re.sub(r"https?://\S+", "", subject + "\n" + body)
        assert not INTERNAL_ID.findall(readable), (template, INTERNAL_ID.findall(readable))
        assert cohort not in readable, template
