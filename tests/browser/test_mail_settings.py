"""A coordinator `make user` added receives the program's mails without doing anything, and
chooses on the e-mail settings page which of them, in which language and time zone; the
notifications service keeps the choice (it owns contacts and delivery)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from playwright.sync_api import Browser, expect

from services.portal.i18n import translate_in
from shared.auth import Role, mint_token
from tests.browser.api import Api, portal_sub
from tests.browser.conftest import ARTIFACTS
from tests.browser.people import Album, Cast
from tests.browser.stack import ROOT, Stack

pytestmark = pytest.mark.browser


def test_a_coordinator_chooses_the_program_mails_they_receive(
    browser: Browser, stack: Stack
) -> None:
    tag = uuid.uuid4().hex[:6]
    address = f"settings-{tag}@city.kitakyushu.example"
    added = stack.add_user("coordinator", address)
    assert "receives the program's mails" in added  # registered with notifications at once
    api = Api(stack)
    sub = portal_sub(stack, address)
    chosen = api.call(
        "notifications", "GET", f"/recipients/coordinators/{sub}", Role.COORDINATOR, sub
    )
    assert chosen["email"] == address and chosen["preferred_language"] == "ja"
    assert chosen["subscriptions"] == {
        "round_summary": True,
        "placements": True,
        "delivery_failures": True,
    }

    with Cast(browser, stack, Album(ARTIFACTS / "mail-settings")) as cast:
        coordinator = cast.person("coordinator", "ja")
        coordinator.sign_in(address, "/coordinator/settings", "/coordinator/settings")
        page = coordinator.page
        coordinator.check("mail-settings")
        expect(page.locator("h1")).to_have_text(translate_in("ja", "E-mail settings"))
        expect(page.locator("main")).to_contain_text(address)
        for name in ("round_summary", "placements", "delivery_failures"):
            expect(page.locator(f"input[name={name}]")).to_be_checked()
        # In English, without placement notices, in Taiwan time.
        page.uncheck("input[name=placements]")
        page.select_option("#preferred_language", "en")
        page.select_option("#time_zone", "Asia/Taipei")
        coordinator.submit("form[action='/coordinator/settings'] button[type=submit]")
        expect(page.locator(".notice[role=status]")).to_contain_text(
            translate_in("ja", "Your e-mail settings are saved.")
        )
        expect(page.locator("input[name=placements]")).not_to_be_checked()
        expect(page.locator("input[name=round_summary]")).to_be_checked()
        expect(page.locator("#preferred_language")).to_have_value("en")
        for language in ("zh-TW", "en"):
            coordinator.switch_language(language)
            coordinator.check("mail-settings")
            expect(page.locator("h1")).to_have_text(translate_in(language, "E-mail settings"))

    chosen = api.call(
        "notifications", "GET", f"/recipients/coordinators/{sub}", Role.COORDINATOR, sub
    )
    assert chosen["preferred_language"] == "en" and chosen["time_zone"] == "Asia/Taipei"
    assert chosen["subscriptions"] == {
        "round_summary": True,
        "placements": False,
        "delivery_failures": True,
    }

    # The operator removes the coordinator: their mails stop with it.
    removed = subprocess.run(
        [sys.executable, "-m", "services.portal", "user", "remove", "--email", address],
        cwd=ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert removed.returncode == 0, removed.stderr
    assert f"{address} no longer receives the program's mails" in removed.stdout
    token = mint_token(api.settings, Role.COORDINATOR, sub)
    gone = api.client.get(
        f"{stack.env['NOTIFICATIONS_URL']}/recipients/coordinators/{sub}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert gone.status_code == 404
