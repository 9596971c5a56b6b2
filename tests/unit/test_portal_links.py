"""Every link the notifications service puts in a mail is a page of the portal, for the
recipient's role: a person who follows it (signing in first) lands where they act."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from starlette.routing import Match

from services.notifications.wording import ACTION_PATHS
from services.portal.pages import ROUTERS

# A company that has just registered may not sign in yet: it is pointed to the public call.
PUBLIC_PAGES = ("/call",)
ROLE_HOME = {"student": "/student", "company": "/company", "coordinator": "/coordinator"}


def portal() -> FastAPI:
    app = FastAPI()
    for router in ROUTERS:
        app.include_router(router)
    return app


def page_for(app: FastAPI, path: str) -> str | None:
    scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
    for route in app.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", ""))
    return None


@pytest.mark.parametrize("template", sorted(ACTION_PATHS))
def test_a_mails_link_is_a_page_of_its_recipient(template: str) -> None:
    path = re.sub(
        r"\{(\w+)\}", lambda m: f"{m.group(1).split('_')[0]}-0123456789ab", ACTION_PATHS[template]
    )
    recipient = template.rsplit(".", 1)[1]
    found = page_for(portal(), path)
    assert found is not None, f"{template}: {path} is no page of the portal"
    public = path in PUBLIC_PAGES  # for anyone, signed in or not
    assert public or path.startswith(ROLE_HOME[recipient]), (
        f"{template} sends a {recipient} to {path}"
    )
