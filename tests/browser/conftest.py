from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.stack import Stack, start_stack
from tests.infra import Infra

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without these, Chromium reaches for Google's hosts at start (refused on a closed network).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}. Install it with "
            "`apt-get install -y chromium fonts-noto-cjk` (Debian/Ubuntu, as root), or set "
            "CHROMIUM=/path/to/chromium.",
            pytrace=False,
        )
    return CHROMIUM


# Package scope: the services stop, and Playwright's event loop ends, when the browser tests
# are done; the sync API's loop would otherwise still count as running for the async tests.
@pytest.fixture(scope="package")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(infra, tmp_path_factory.mktemp("browser-logs"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="package")
def browser(chromium_path: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
