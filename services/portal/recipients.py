"""Coordinators as recipients of the program's mails (round summaries, placements, delivery
failures). The notifications service owns contacts and delivery, so the portal tells it over
its API, as the coordinator: when the operator adds one (`make user`), at each sign-in and
first visit of the e-mail settings page (so that nobody is missed while that service was
away), when the coordinator changes their choices, and when the operator removes them."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from services.portal.clients import ApiError, Caller, Services, ServiceUnavailable
from services.portal.domain import PortalRole, normalise_email
from services.portal.settings import PortalSettings
from services.portal.store import PortalStore
from shared.mongo import connect

log = logging.getLogger(__name__)

SUBSCRIPTIONS = ("round_summary", "placements", "delivery_failures")


def path(sub: str) -> str:
    return f"/recipients/coordinators/{sub}"


async def get(caller: Caller, sub: str) -> dict[str, Any] | None:
    """The coordinator's choices, or None when notifications does not know them yet."""
    try:
        return await caller.get("notifications", path(sub))  # type: ignore[no-any-return]
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


async def register(
    caller: Caller, sub: str, email: str, *, name: str | None = None, time_zone: str | None = None
) -> dict[str, Any]:
    """Make sure notifications knows the coordinator's address; what they chose stays."""
    body: dict[str, Any] = {"email": email}
    if name:
        body["name"] = name
    if time_zone and (await get(caller, sub)) is None:
        body["time_zone"] = time_zone  # the operator's choice, only for a new recipient
    return await caller.put("notifications", path(sub), body)  # type: ignore[no-any-return]


async def register_quietly(caller: Caller, sub: str, email: str, name: str | None) -> None:
    """At sign-in: a failure must not stop the person; the next sign-in tries again."""
    try:
        await register(caller, sub, email, name=name)
    except (ApiError, ServiceUnavailable) as exc:
        log.warning("coordinator not registered for mails", extra={"sub": sub, "error": str(exc)})


# -- `python -m services.portal user add|remove` (make user) ------------------------------


async def coordinator_before(args: argparse.Namespace, settings: PortalSettings) -> str | None:
    """Before `user remove`: the coordinator's id, which the removal forgets."""
    email = normalise_email(args.email or "")
    if args.action != "remove" or email is None:
        return None
    user = await coordinator_of(settings, email)
    return str(user["sub"]) if user else None


async def coordinator_of(settings: PortalSettings, email: str) -> dict[str, Any] | None:
    """The portal's coordinator with this address, if there is one."""
    client = connect(settings.mongodb_uri)
    try:
        user = await PortalStore(client[settings.database]).find_user(email)
    finally:
        await client.close()
    if user is None or user["role"] != PortalRole.COORDINATOR.value:
        return None
    return user


async def after_user_command(
    args: argparse.Namespace, settings: PortalSettings, code: int, removed_sub: str | None
) -> int:
    """After `user add` of a coordinator: register them for the program's mails; after
    `user remove`: stop them. The operator's command has done its part either way; a
    notifications service that does not answer is reported in one line."""
    if code != 0 or args.action not in ("add", "remove"):
        return code
    email = normalise_email(args.email or "")
    services = Services.create(settings)
    try:
        if args.action == "remove":
            if removed_sub is not None:
                await stop(services, removed_sub, str(email))
            return code
        if args.role != PortalRole.COORDINATOR.value or email is None:
            return code
        user = await coordinator_of(settings, email)
        if user is None:
            return code
        caller = services.as_person(PortalRole.COORDINATOR.value, user["sub"])
        try:
            await register(
                caller, user["sub"], email, name=user.get("name"), time_zone=user.get("time_zone")
            )
        except (ApiError, ServiceUnavailable) as exc:
            print(
                f"note: the notifications service ({settings.notifications_url}) did not take "
                f"{email} as a recipient ({exc}); it will at their first sign-in.",
                file=sys.stderr,
            )
            return code
        print(
            f"{email} receives the program's mails (round summaries, placements, delivery "
            "failures); they choose on the portal's e-mail settings page"
        )
        return code
    finally:
        await services.close()


async def stop(services: Services, sub: str, email: str) -> None:
    caller = services.as_person(PortalRole.COORDINATOR.value, sub)
    try:
        await caller.delete("notifications", path(sub))
    except ApiError as exc:
        if exc.status != 404:  # never registered: nothing to stop
            raise
    except ServiceUnavailable:
        print(
            f"warning: the notifications service ({services.settings.notifications_url}) did "
            f"not answer; {email} still receives the program's mails. Run, once it is up: "
            f"curl -X DELETE {services.settings.notifications_url}{path(sub)} "
            f'-H "Authorization: Bearer $(make -s token ROLE=coordinator SUB={sub})"',
            file=sys.stderr,
        )
        return
    print(f"{email} no longer receives the program's mails")
