"""Plain forms work without JavaScript: a student signs in, adds two positions, reorders them
with the Up button (a full-page form post, no htmx, no drag and drop) and sends the
application; the applications service stores the order chosen on the page."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.api import Api
from tests.browser.conftest import ARTIFACTS
from tests.browser.people import Album, sign_in_link
from tests.browser.stack import Stack

pytestmark = pytest.mark.browser


def test_a_student_applies_without_javascript(browser: Browser, stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    cohort_id = f"2027-nojs-{tag}"
    api = Api(stack)
    api.open_cohort(cohort_id, "No-JS cohort")
    company = api.approved_company(
        {
            "name_ja": f"若松ロボティクス{tag}株式会社",
            "name_en": f"Wakamatsu Robotics {tag}",
            "sector": "robotics_ai",
            "ward": "Wakamatsu-ku",
            "address": "1-1 Hibikino",
            "contact": {"name": "佐藤", "email": f"jp-{tag}@example.jp"},
        },
    )
    titles = [f"Robot vision {tag}", f"Motion planning {tag}"]
    for title in titles:
        api.publish_position(
            company["id"],
            {
                "cohort_id": cohort_id,
                "title": title,
                "track": "joint_research",
                "capacity": 1,
                "paid": False,
                "start_date": "2027-07-01",
                "end_date": "2027-08-20",
                "location": "Kitakyushu Science and Research Park",
            },
        )

    album = Album(ARTIFACTS / "no-javascript")
    # Screenshots only: axe-core cannot run where scripts are off (the walk-through checks
    # the same pages with it).
    context = browser.new_context(base_url=stack.portal_url, java_script_enabled=False)
    page = context.new_page()
    address = f"nojs-{tag}@ntut.edu.tw"
    try:
        page.goto("/student/profile")
        page.fill("#email", address)
        after = time.time() - 1
        page.click("form[action='/sign-in'] button[type=submit]")
        page.goto(sign_in_link(stack.mailbox, address, after))
        page.click("form[action='/sign-in/verify'] button[type=submit]")
        expect(page).to_have_url(re.compile(r"/student/profile$"))
        for field, value in (
            ("#name", "No Script"),
            ("#department", "Computer Science"),
            ("#graduation_year", "2028"),
            ("#available_from", "2027-06-01"),
            ("#available_to", "2027-09-30"),
        ):
            page.fill(field, value)
        page.check("#consent")
        page.click("form[action='/student/profile'] button[type=submit]")
        expect(page.locator(".notice[role=status]")).to_be_visible()

        for title in titles:
            page.goto(f"/student/positions?q={tag}")
            page.locator("li.card", has_text=title).locator("button[type=submit]").click()
            expect(page.locator(".notice[role=status]")).to_contain_text(title)
        page.goto("/student/application")
        items = page.locator("#choices > li")
        expect(items.nth(0)).to_contain_text(titles[0])
        items.nth(1).locator("button[value^='up:']").click()  # a plain form post
        expect(page.locator("#choices > li").nth(0)).to_contain_text(titles[1])
        expect(page.locator("#unsaved")).not_to_be_empty()
        page.screenshot(path=str(album.path("student", "application-reordered")), full_page=True)
        page.fill("#motivation", "Robots.")
        page.click("#send-application")
        expect(page).to_have_url(re.compile(r"/student$"))
        page.screenshot(path=str(album.path("student", "status")), full_page=True)
    finally:
        context.close()

    applications = api.coordinator("GET", f"/applications?cohort_id={cohort_id}")
    positions = {
        p["id"]: p["title"] for p in api.coordinator("GET", f"/positions?cohort_id={cohort_id}")
    }
    assert len(applications) == 1
    assert [positions[p] for p in applications[0]["ranked_position_ids"]] == titles[::-1]
