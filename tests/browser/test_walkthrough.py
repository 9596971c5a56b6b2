"""The whole program in a real browser against the real services, once in each language:
a company answers the public call; the coordinator signs in through the mailbox link, creates
the cohort, approves the company and opens the window; the company signs in, publishes a
position (a refused first try shows the reason in the person's language) and changes it; two
students register and apply; the company ranks them; the coordinator closes the window and
runs a round; the first student declines on their status page (confirmed on a page of its
own), which frees the seat for a second round; the second student opens the proposal from
the mail (signing in on a new browser first) and accepts, the company accepts; both see
the placement; the coordinator cancels it with a reason and a case-file code, which both see
in words, and finishes the cohort; the university office sees its students; the first
student erases their data. Every page is screenshotted and checked with axe-core."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from services.portal.i18n import translate_in
from tests.browser.conftest import ARTIFACTS
from tests.browser.people import Album, Cast
from tests.browser.stack import Stack

pytestmark = pytest.mark.browser

NAMES = {
    # Student 2's name sorts first, so the company has to move student 1 up.
    "en": ("Lin Yi-Chun", "Chen Wei-Ting"),
    "zh-TW": ("林怡君", "李威廷"),
    "ja": ("Lin Yi-Chun", "Chen Wei-Ting"),
}
# How each language names the two zones on the pages (student 2 chooses Japan time).
TAIWAN_TIME = {"en": "Taiwan time", "zh-TW": "臺灣時間", "ja": "台湾時間"}
JAPAN_TIME = {"en": "Japan time", "zh-TW": "日本時間", "ja": "日本時間"}
PROPOSAL_LINK = re.compile(r"https?://\S+/student/proposals/prop-[0-9a-f]+")


def local(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%dT%H:%M")


def preview_until(page: Page, cohort_id: str, expected_name: str, tries: int = 40) -> None:
    """Preview the round until matching has received every application and ranking (they
    travel over Kafka), so the round decides on the same facts the people see."""
    for _ in range(tries):
        page.click(f"form[action='/coordinator/cohorts/{cohort_id}/preview'] button")
        page.wait_for_load_state("load")
        pairs = page.locator("#preview-pairs")
        if pairs.count() and expected_name in pairs.inner_text():
            return
        time.sleep(0.5)
    raise AssertionError(f"the round preview never proposed {expected_name}")


def run_round(page: Page, cohort_id: str, tries: int = 20) -> None:
    """Run a round from the cohort page. The matching service learns that the window closed
    by event, a moment after the coordinator closed it; until then it refuses the round (409,
    shown as a page saying so), and the coordinator tries again."""
    for _ in range(tries):
        page.goto(f"/coordinator/cohorts/{cohort_id}")
        page.click(f"form[action='/coordinator/cohorts/{cohort_id}/round'] button")
        page.wait_for_load_state("load")
        if re.search(r"/coordinator/rounds/round-", page.url):
            return
        time.sleep(0.5)
    raise AssertionError(f"the round of {cohort_id} was refused {tries} times")


@pytest.mark.parametrize("language", ["en", "zh-TW", "ja"])
def test_walkthrough(browser: Browser, stack: Stack, language: str) -> None:
    started = time.monotonic()
    tag = uuid.uuid4().hex[:6]
    album = Album(ARTIFACTS / language)
    cohort_id = f"2026-summer-{tag}"
    company_email = f"hr-{tag}@hibikinada.example"
    student_emails = (f"s1-{tag}@ntut.edu.tw", f"s2-{tag}@mail.ntut.edu.tw")
    first, second = NAMES[language]
    company_name = f"響灘セミコンダクター{tag}株式会社"
    coordinator_email = f"coordinator-{tag}@city.kitakyushu.example"
    university_email = f"office-{tag}@ntut.edu.tw"
    stack.add_user("coordinator", coordinator_email)
    stack.add_user("university", university_email)

    def say(message: str) -> str:
        return translate_in(language, message)

    with Cast(browser, stack, album) as cast:
        # -- the public pages; a company answers the call -----------------------------------
        company = cast.person("company", language)
        company.visit("/", "program")
        page = company.visit("/call", "call")
        page.fill("#name_ja", company_name)
        page.fill("#name_en", f"Hibikinada Semiconductor {tag} Co., Ltd.")
        page.select_option("#sector", "semiconductor")
        page.select_option("#ward", "Wakamatsu-ku")
        page.fill("#address", "2-1 Hibikino, Wakamatsu-ku, Kitakyushu")
        page.fill("#contact_name", "山田 花子")
        page.fill("#contact_email", company_email)
        page.select_option("#preferred_language", language)
        company.submit("form[action='/call'] button[type=submit]")
        expect(page.locator(".notice[role=status]")).to_contain_text(company_name)
        company.check("call-done")

        # -- the coordinator signs in, creates the cohort, approves the company, opens -------
        coordinator = cast.person("coordinator", language)
        coordinator.sign_in(coordinator_email, "/coordinator", "/coordinator")
        coordinator.check("dashboard")
        page = coordinator.page
        now = datetime.now(ZoneInfo("UTC"))
        page.fill("#cohort_id", cohort_id)
        page.fill("#cohort_name", "第1期生")
        page.fill("#opens", local(now - timedelta(days=1)))
        page.fill("#closes", local(now + timedelta(days=30)))
        coordinator.submit("form[action='/coordinator/cohorts'] button[type=submit]")
        expect(page).to_have_url(re.compile(f"/coordinator/cohorts/{cohort_id}$"))
        expect(page.locator("#cohort-state")).to_have_text(say("Draft"))
        coordinator.check("cohort-draft")

        coordinator.visit("/coordinator/companies?status=pending", "companies")
        row = page.locator("tr", has_text=company_name)
        row.locator("form[action$='/approve'] button").click()
        expect(page.locator(".notice[role=status]")).to_contain_text(company_name)
        expect(page.locator("tr", has_text=company_name)).to_have_count(0)  # filter: pending
        coordinator.check("company-approved")

        # The dashboard offers each cohort's next step (the API's allowed actions).
        page = coordinator.visit("/coordinator", "dashboard-draft")
        coordinator.submit(f"form[action='/coordinator/cohorts/{cohort_id}/open'] button")
        expect(page.locator(".notice[role=status]")).to_be_visible()
        expect(
            page.locator(f"form[action='/coordinator/cohorts/{cohort_id}/close']")
        ).to_be_visible()
        coordinator.check("dashboard-open")

        # -- the company signs in and publishes a position -----------------------------------
        company.sign_in(company_email, "/company", "/company")
        company.check("overview")
        page = company.visit("/company/profile", "profile")
        page.select_option("#time_zone", "Asia/Tokyo")
        company.submit("form[action='/company/profile'] button[type=submit]")
        expect(page.locator(".notice[role=status]")).to_be_visible()
        page = company.visit("/company/positions", "positions")
        page.select_option("#cohort_id", cohort_id)
        page.fill("#title", "Wafer inspection")
        page.fill("#description", "Image processing for the wafer inspection line.")
        page.select_option("#track", "development_design_programming")
        page.fill("#capacity", "1")
        page.fill("#required_skills", "python, opencv")
        page.select_option("#min_jlpt", "N3")
        page.fill("#start_date", "2027-08-31")
        page.fill("#end_date", "2027-07-01")  # before the first day: the service says no
        page.fill("#location", "Kitakyushu Science and Research Park")
        company.submit("form[action='/company/positions'] button[type=submit]")
        problems = page.locator("#problems")
        expect(problems).to_contain_text(say("Last day"))
        expect(problems).to_contain_text(say("The last day must be after the first day."))
        expect(problems).not_to_contain_text("end_date")
        company.check("position-refused")
        page.fill("#start_date", "2027-07-01")
        page.fill("#end_date", "2027-08-31")
        company.submit("form[action='/company/positions'] button[type=submit]")
        expect(page).to_have_url(re.compile(r"/company/positions/pos-[0-9a-f]+$"))
        position_id = page.url.rsplit("/", 1)[1]
        company.check("position")
        # While the window is open the company may change it.
        page.click("#edit-position")
        company.check("position-edit")
        page.fill("#title", "Wafer inspection software")
        company.submit("#save-position")
        expect(page.locator(".notice[role=status]")).to_contain_text("Wafer inspection software")
        expect(page.locator("h1")).to_have_text("Wafer inspection software")

        # -- two students register (on phones) and apply ------------------------------------
        students = []
        zones = ("Asia/Taipei", "Asia/Tokyo")
        for index, (address, name) in enumerate(zip(student_emails, (first, second), strict=True)):
            student = cast.person(f"student{index + 1}", language, phone=True)
            students.append(student)
            student.sign_in(address, "/student/profile", "/student/profile")
            page = student.page
            student.check("profile-new")
            page.fill("#name", name)
            page.fill("#department", "Electrical Engineering")
            page.select_option("#degree_program", "master")
            page.fill("#graduation_year", "2028")
            page.select_option("#jlpt_level", "N2")
            page.select_option("#english_level", "B2")
            page.fill("#skills", "python, opencv")
            page.fill("#available_from", "2027-06-15")
            page.fill("#available_to", "2027-09-15")
            page.select_option("#preferred_language", language)
            page.select_option("#time_zone", zones[index])
            page.check("#consent")
            student.submit("form[action='/student/profile'] button[type=submit]")
            expect(page.locator(".notice[role=status]")).to_be_visible()
            student.check("profile-saved")
            page = student.visit("/student/positions?sector=semiconductor&jlpt=N2", "positions")
            card = page.locator("li.card", has=page.locator(f"input[value='{position_id}']"))
            card.locator("button[type=submit]").click()
            expect(page.locator(".notice[role=status]")).to_be_visible()
            page = student.visit("/student/application", "application")
            page.fill("#motivation", "I want to build my career in Kitakyushu.")
            student.submit("#send-application")
            expect(page).to_have_url(re.compile(r"/student$"))
            expect(page.locator(".notice[role=status]")).to_be_visible()
            expect(page.locator(".application-state")).to_have_text(say("Submitted"))
            student.check("status-applied")
        student1, student2 = students

        # -- the company ranks: student 1 first ---------------------------------------------
        page = company.visit(f"/company/positions/{position_id}/applicants", "applicants")
        items = page.locator("#ranking > li")
        expect(items).to_have_count(2)
        expect(items.nth(0)).to_contain_text(second)
        if language == "en":
            # Drag and drop by the handle.
            handle = items.nth(1).locator(".drag-handle")
            target = items.nth(0)
            box = handle.bounding_box()
            goal = target.bounding_box()
            assert box and goal
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            for step in range(1, 11):
                page.mouse.move(
                    box["x"] + box["width"] / 2,
                    box["y"] - (box["y"] - goal["y"] + 5) * step / 10,
                )
            page.mouse.up()
            expect(page.locator("#unsaved")).not_to_be_empty()
        else:
            # The keyboard way: Tab to the student's Up button and press Enter.
            up = items.nth(1).locator("button[value^='up:']")
            up.focus()
            page.keyboard.press("Enter")
            expect(page.locator("#unsaved")).not_to_be_empty()
        expect(page.locator("#ranking > li").nth(0)).to_contain_text(first)
        company.check("applicants-reordered")
        page.click("#save-ranking")
        expect(page.locator(".notice[role=status]")).to_be_visible()
        page.reload()
        expect(page.locator("#ranking > li").nth(0)).to_contain_text(first)
        company.check("applicants-ranked")

        # -- the coordinator closes the window and runs a round ------------------------------
        page = coordinator.visit(f"/coordinator/cohorts/{cohort_id}", "cohort-before-close")
        close = f"form[action='/coordinator/cohorts/{cohort_id}/close'] button"
        coordinator.submit(close)
        expect(page.locator(".notice[role=status]")).to_be_visible()
        expect(page.locator("#cohort-state")).to_have_text(say("Applications closed"))
        coordinator.check("cohort-closed")
        # Before the first round the window can be opened again (and closed again).
        coordinator.submit(f"form[action='/coordinator/cohorts/{cohort_id}/open'] button")
        expect(page.locator(".notice[role=status]")).to_contain_text("第1期生")
        expect(page.locator("#cohort-state")).to_have_text(say("Open for applications"))
        coordinator.submit(close)
        expect(page.locator("#cohort-state")).to_have_text(say("Applications closed"))
        preview_until(page, cohort_id, first)
        coordinator.check("round-preview")
        run_round(page, cohort_id)
        coordinator.check("round")
        # The facts for checking the round sit below its outcome, folded.
        page.click("#technical summary")
        coordinator.submit("form[action$='/replay'] button")
        expect(page.locator("#replay-result")).to_be_visible()
        coordinator.check("round-replayed")

        # -- student 1 declines on the status page: the seat is free again -------------------
        # The application's state reaches the applications service by event, a moment after
        # the proposal itself.
        page = student1.visit_until(
            "/student", "status-proposed", ".application-state", say("Proposed a match")
        )
        waiting = page.locator(".card.highlight[id^=waiting-]")
        expect(waiting).to_contain_text(TAIWAN_TIME[language])  # the deadline in their zone
        expect(page.locator(".application-state")).to_have_text(say("Proposed a match"))
        # Declining cannot be undone: the link opens a page that asks once more.
        waiting.locator("a[href*='/decline']").click()
        student1.check("decline-confirm")
        student1.submit("form[action$='/decline'] button[name=confirmed]")
        expect(page).to_have_url(re.compile(r"/student$"))
        expect(page.locator(".notice[role=status]")).to_be_visible()
        expect(page.locator(".application-state")).to_have_text(say("Declined"))
        student1.check("status-declined")

        # -- a second round proposes student 2 -----------------------------------------------
        round_two_after = time.time() - 1
        page = coordinator.visit(f"/coordinator/cohorts/{cohort_id}", "cohort-after-decline")
        preview_until(page, cohort_id, second)
        run_round(page, cohort_id)
        expect(page).to_have_url(re.compile(r"/coordinator/rounds/round-.*-2$"))
        coordinator.check("round-2")

        # -- student 2 opens the proposal from the mail on another browser, signs in, accepts -
        mail_reader = cast.person("student2-mail", language, phone=True)
        path = mail_reader.follow_mail(student_emails[1], PROPOSAL_LINK, round_two_after)
        page = mail_reader.page
        mail_reader.check("proposal")
        expect(page.locator("dl.facts")).to_contain_text(JAPAN_TIME[language])  # their zone
        mail_reader.submit("form[action$='/accept'] button")
        expect(page).to_have_url(re.compile(re.escape(path) + "$"))
        expect(page.locator(".notice[role=status]")).to_be_visible()
        mail_reader.check("proposal-accepted")

        page = company.visit("/company", "overview-proposal")
        page.locator("section[aria-labelledby=todo] a").first.click()
        expect(page.locator("#proposed-student")).to_have_text(second)
        company.check("proposal")
        company.submit("form[action$='/accept'] button")
        expect(page.locator(".notice[role=status]")).to_be_visible()
        company.check("proposal-accepted")
        page = company.visit("/company/placements", "placements")
        expect(page.locator("table")).to_contain_text(second)

        page = student2.visit_until(
            "/student", "status-placed", ".application-state", say("Placed")
        )
        expect(page.locator(".card.success[id^=placement-]")).to_contain_text(
            "Wafer inspection software"
        )
        expect(page.locator(".application-state")).to_have_text(say("Placed"))

        # -- the coordinator's lists; a placement cancelled with a reason; finish -------------
        for tab in ("proposals", "positions"):
            coordinator.visit(f"/coordinator/cohorts/{cohort_id}?tab={tab}", f"cohort-{tab}")
        page = coordinator.page
        expect(page.locator("table")).to_contain_text("Wafer inspection software")
        page = coordinator.visit(f"/coordinator/cohorts/{cohort_id}?tab=placements", "placements")
        page.locator("#placement-table a[href$='/cancel']").click()
        coordinator.check("placement-cancel")
        page.check("input[name=reason][value=company_withdrew]")
        page.fill("#note_code", f"KK-2027-{tag}")
        coordinator.submit("form[action$='/cancel'] button[name=confirmed]")
        expect(page.locator(".notice[role=status]")).to_be_visible()
        reason = say("The company withdrew from hosting the intern.")
        expect(page.locator("#placement-table")).to_contain_text(reason)
        expect(page.locator("#placement-table")).to_contain_text(f"KK-2027-{tag}")
        coordinator.check("placement-cancelled")
        page = student2.visit_until(
            "/student", "status-placement-cancelled", ".application-state", say("Cancelled")
        )
        expect(page.locator(".application-state")).to_have_text(say("Cancelled"))
        expect(page.locator("#applications")).to_contain_text(reason)
        page = company.visit("/company/placements", "placements-cancelled")
        expect(page.locator("table")).to_contain_text(reason)

        page = coordinator.visit(f"/coordinator/cohorts/{cohort_id}", "cohort-matching")
        page.click(f"a[href='/coordinator/cohorts/{cohort_id}/finish']")
        coordinator.check("cohort-finish")
        coordinator.submit("form[action$='/finish'] button[name=confirmed]")
        expect(page.locator("#cohort-state")).to_have_text(say("Finished"))
        coordinator.check("cohort-finished")
        coordinator.visit(f"/coordinator/deliveries?cohort={cohort_id}", "deliveries")
        # Reminders nobody needed any more, each with why, in the coordinator's language.
        coordinator.visit_until(
            f"/coordinator/deliveries?cohort={cohort_id}&status=suppressed",
            "deliveries-unsent",
            "table",
            say("The recipient has already answered, so no reminder is needed."),
        )

        # -- the university office: its students, one of them, and the roster ----------------
        office = cast.person("university", language)
        office.sign_in(university_email, "/university", "/university")
        page = office.page
        expect(page.locator("table")).to_contain_text(second)
        office.check("students")
        row = page.locator("tr", has_text=student_emails[1])
        student_page = row.locator("a", has_text=second).get_attribute("href")
        assert student_page
        page = office.visit_until(student_page, "student", "main", say("Cancelled"))
        expect(page.locator("h1")).to_have_text(second)
        page = office.visit("/university", "students")
        page.set_input_files(
            "#roster",
            files=[
                {
                    "name": "roster.csv",
                    "mimeType": "text/csv",
                    "buffer": f"email,name,department\ninvited-{tag}@ntut.edu.tw,王小明,"
                    "Mechanical Engineering\n".encode(),
                }
            ],
        )
        office.submit("form[action='/university/roster'] button[type=submit]")
        expect(page.locator(".notice[role=status]")).to_be_visible()
        expect(page.locator("table")).to_contain_text("王小明")
        office.check("roster-invited")

        # -- student 1 erases their data ----------------------------------------------------
        page = student1.visit("/student/erase", "erase")
        student1.submit("form[action='/student/erase'] button")
        expect(page.locator(".notice[role=status]")).to_be_visible()
        student1.check("erased")
        student1.page.goto("/student")
        expect(student1.page).to_have_url(re.compile(r"/sign-in\?next="))
    print(
        f"\n{language}: {album.count} pages in {time.monotonic() - started:.1f}s, of which "
        f"{album.seconds_checking:.1f}s screenshots and axe-core"
    )
