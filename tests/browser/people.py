"""A person at a browser: signs in through the mailbox, visits pages, and on every page keeps a
screenshot and runs the axe-core accessibility check."""

from __future__ import annotations

import email
import email.policy
import re
import time
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from types import TracebackType
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.browser.stack import Stack

AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
ACCEPT_LANGUAGE = {"en": "en-GB,en;q=0.9", "ja": "ja-JP,ja;q=0.9", "zh-TW": "zh-TW,zh;q=0.9"}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
LINK = re.compile(r"https?://\S+/sign-in/verify\?token=[\w-]+")


@dataclass
class Album:
    """Screenshots of one pass, numbered in the order the pages were seen."""

    folder: Path
    count: int = 0
    pages: list[str] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)
    seconds_checking: float = 0.0  # screenshots and axe, to report where the time goes

    def __post_init__(self) -> None:
        # Only this run's pages: screenshots of an earlier run would be mistaken for them.
        for old in self.folder.glob("*.png"):
            old.unlink()

    def path(self, who: str, name: str) -> Path:
        self.count += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pages.append(f"{who}:{name}")
        return self.folder / f"{self.count:02d}-{who}-{name}.png"


def mail_link(
    mailbox: Path, address: str, link: re.Pattern[str], after: float, timeout: float = 30
) -> str:
    """The newest link matching `link` in a mail to `address` saved since `after` (the SMTP
    sink keeps every mail the portal and the notifications service send)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(mailbox.glob("*.eml"), reverse=True):
            if path.stat().st_mtime < after:
                break
            with path.open("rb") as f:
                message = email.message_from_binary_file(f, policy=email.policy.default)
            if parseaddr(str(message["To"]))[1].lower() == address.lower():
                body = message.get_body(preferencelist=("plain",))
                found = link.search(body.get_content() if body else "")  # type: ignore[union-attr]
                if found:
                    return found.group(0)
        time.sleep(0.2)
    raise AssertionError(f"no mail to {address} with {link.pattern} in {mailbox} after {timeout}s")


def sign_in_link(mailbox: Path, address: str, after: float, timeout: float = 30) -> str:
    """The newest sign-in link sent to `address` since `after`."""
    return mail_link(mailbox, address, LINK, after, timeout)


class Person:
    def __init__(
        self,
        browser: Browser,
        stack: Stack,
        album: Album,
        who: str,
        language: str,
        *,
        phone: bool = False,
    ) -> None:
        self.stack = stack
        self.album = album
        self.who = who
        self.language = language
        # bypass_csp: only so that the test can inject axe-core; the portal's CSP forbids
        # inline scripts, as it should.
        self.context = browser.new_context(
            base_url=stack.portal_url,
            viewport=PHONE if phone else DESKTOP,
            is_mobile=phone,
            has_touch=phone,
            locale=language,
            extra_http_headers={"Accept-Language": ACCEPT_LANGUAGE[language]},
            bypass_csp=True,
        )
        self.context.set_default_timeout(20_000)
        # Loaded into every page as it is created: one transfer instead of one per page.
        self.context.add_init_script(path=str(AXE))
        self.page: Page = self.context.new_page()

    def close(self) -> None:
        self.context.close()

    def visit(self, path: str, name: str) -> Page:
        self.page.goto(path)
        self.check(name)
        return self.page

    def visit_until(
        self, path: str, name: str, selector: str, text: str, timeout: float = 20
    ) -> Page:
        """Visit a page until `selector` shows `text`: for facts that reach the page's service
        by event, a moment after the act that caused them."""
        deadline = time.monotonic() + timeout
        self.page.goto(path)
        while text not in self.page.locator(selector).inner_text():
            assert time.monotonic() < deadline, f"{path}: {selector} never showed {text!r}"
            time.sleep(0.3)
            self.page.reload()
        self.check(name)
        return self.page

    def check(self, name: str, *, shared: bool = False) -> None:
        """Screenshot, the page's language, and no serious or critical axe violation.

        A page already checked in this pass for the same kind of person (the second student's
        profile, say), or a `shared` page anyone sees (sign-in), is not checked again."""
        page = self.page
        started = time.monotonic()
        page.wait_for_load_state("load")
        expect(page.locator("html")).to_have_attribute("lang", self.language)
        key = ("anyone" if shared else self.who.rstrip("0123456789"), name)
        if key in self.album.seen:
            return
        self.album.seen.add(key)
        page.screenshot(path=str(self.album.path(self.who, name)), full_page=True)
        result: dict[str, Any] = page.evaluate(
            "async () => await axe.run(document, {resultTypes: ['violations']})"
        )
        serious = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"]
            if v.get("impact") in ("serious", "critical")
        ]
        self.album.seconds_checking += time.monotonic() - started
        assert not serious, f"{self.who} on {page.url} ({name}): {serious}"

    def sign_in(self, address: str, next_path: str, landing: str) -> None:
        """Open a page that needs a session, sign in through the e-mailed link, land there."""
        self.page.goto(next_path)
        self.sign_in_here(address, landing)

    def sign_in_here(self, address: str, landing: str) -> None:
        """On the sign-in page (sent there from a page that needs a session): ask for a link,
        open it from the mailbox, confirm, and land on `landing` (a path or a pattern)."""
        page = self.page
        expect(page).to_have_url(re.compile(r"/sign-in\?next="))
        self.check("sign-in", shared=True)
        page.fill("#email", address)
        sent_after = time.time() - 1
        page.click("form[action='/sign-in'] button[type=submit]")
        expect(page.locator(".notice")).to_be_visible()
        self.check("sign-in-sent", shared=True)
        link = sign_in_link(self.stack.mailbox, address, sent_after)
        page.goto(link)
        self.check("sign-in-verify", shared=True)
        page.click("form[action='/sign-in/verify'] button[type=submit]")
        expect(page).to_have_url(re.compile(re.escape(landing) + r"$"))
        expect(page.locator(".notice[role=status]")).to_be_visible()

    def follow_mail(self, address: str, link: re.Pattern[str], after: float) -> str:
        """Open the link of a mail the platform sent to `address` (signing in first when the
        browser has no session), as the recipient would from their mail app. Returns the
        link's path."""
        url = mail_link(self.stack.mailbox, address, link, after)
        path = "/" + url.split("://", 1)[1].split("/", 1)[1]
        self.page.goto(url)
        if "/sign-in?next=" in self.page.url:
            self.sign_in_here(address, path)
        expect(self.page).to_have_url(re.compile(re.escape(path) + r"$"))
        return path

    def switch_language(self, language: str) -> None:
        """Pick another language with the links every page has."""
        self.page.locator(f"nav.languages a[hreflang='{language}']").click()
        self.page.wait_for_load_state("load")
        self.language = language
        expect(self.page.locator("html")).to_have_attribute("lang", language)

    def submit(self, selector: str) -> None:
        self.page.click(selector)
        self.page.wait_for_load_state("load")


class Cast:
    """The people of one test, each at their own browser: every one's browser context is
    closed when the test ends, however it ends."""

    def __init__(self, browser: Browser, stack: Stack, album: Album) -> None:
        self.browser = browser
        self.stack = stack
        self.album = album
        self.people: list[Person] = []

    def person(self, who: str, language: str, *, phone: bool = False) -> Person:
        p = Person(self.browser, self.stack, self.album, who, language, phone=phone)
        self.people.append(p)
        return p

    def __enter__(self) -> Cast:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for p in self.people:
            p.close()
