"""A university office uploads rosters in a real browser, in Traditional Chinese: a picture
chosen by mistake is refused with the reason in the office's language; a Big5 roster saved by
Excel for Mac (bare CR line ends) is read with the names intact, the line that is wrong is
named, and a reload shows how many invitations have gone out, which arrive once each."""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.sync_api import Browser, expect

from services.portal.i18n import translate_in, translations
from tests.browser.conftest import ARTIFACTS
from tests.browser.people import Album, Cast
from tests.browser.stack import Stack
from tests.infra import read_mailbox

pytestmark = pytest.mark.browser
TAIPEI_TECH = "National Taipei University of Technology"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"
NOT_TEXT = 'this file is not a text CSV; in Excel, save it as "CSV UTF-8"'
PROGRESS = (
    "%(sent)s of %(num)s invitation sent, %(waiting)s waiting, %(failed)s failed.",
    "%(sent)s of %(num)s invitations sent, %(waiting)s waiting, %(failed)s failed.",
)


def test_an_office_uploads_a_picture_then_a_big5_roster(browser: Browser, stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    album = Album(ARTIFACTS / "roster")
    started = time.monotonic()
    with Cast(browser, stack, album) as cast:
        office = cast.person("university", "zh-TW")
        office_email = f"roster-office-{tag}@ntut.edu.tw"
        stack.add_user("university", office_email, university=TAIPEI_TECH)
        office.sign_in(office_email, "/university", "/university")
        page = office.page

        page.set_input_files(
            "#roster", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": PNG}]
        )
        office.submit("form[action='/university/roster'] button[type=submit]")
        alert = page.locator(".errors[role=alert]")
        expect(alert).to_contain_text(translate_in("zh-TW", "The file was not used:"))
        expect(alert).to_contain_text(translate_in("zh-TW", NOT_TEXT))
        office.check("roster-refused")

        students = {f"lin-{tag}@ntut.edu.tw": "林怡君", f"chen-{tag}@ntut.edu.tw": "陳冠廷"}
        lines = ["電子郵件,姓名,系所"] + [f"{e},{n},資訊工程系" for e, n in students.items()]
        lines.append("not-an-address,王小明,機械工程系")
        big5 = ("\r".join(lines) + "\r").encode("cp950")
        page.set_input_files(
            "#roster", files=[{"name": "名冊.csv", "mimeType": "text/csv", "buffer": big5}]
        )
        office.submit("form[action='/university/roster'] button[type=submit]")
        alert = page.locator(".errors[role=alert]")
        expect(alert).to_contain_text(translate_in("zh-TW", "Line %(line)s", line="4"))
        expect(alert).to_contain_text(translate_in("zh-TW", "not a valid e-mail address"))
        office.check("roster-line-refused")

        done = translations("zh-TW").ngettext(*PROGRESS, 2)
        sent = done % {"sent": 2, "num": 2, "waiting": 0, "failed": 0}
        page = office.visit_until(f"/university?q={tag}", "roster-progress", "main", sent)
        for name in students.values():
            expect(page.locator("table")).to_contain_text(name)
        mailed = [str(m["To"]) for m in read_mailbox(stack.mailbox) if str(m["To"]) in students]
        assert sorted(mailed) == sorted(students)
    print(f"\nroster: {album.count} pages in {time.monotonic() - started:.1f}s")
