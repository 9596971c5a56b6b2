"""python -m services.portal                  serve the portal
python -m services.portal user add --role coordinator --email someone@city.kitakyushu.lg.jp
python -m services.portal user add --role university --email office@ntut.edu.tw \
    --university "National Taipei University of Technology"
python -m services.portal user list | user remove --email ...
python -m services.portal identities     addresses that belong to more than one live identity"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pymongo.errors import PyMongoError

from services.portal import recipients
from services.portal.clients import ApiError, Services, ServiceUnavailable
from services.portal.domain import PortalRole, holders, normalise_email, taken_by_other
from services.portal.settings import PortalSettings
from services.portal.store import PortalStore
from shared.auth import _embedded_env_file
from shared.ids import new_id
from shared.local_stack import unreachable, use_local_stack
from shared.mongo import connect

OPERATOR_ROLES = (PortalRole.COORDINATOR, PortalRole.UNIVERSITY)
SUB_PREFIX = {PortalRole.COORDINATOR: "coord", PortalRole.UNIVERSITY: "uni"}
# The program's one partner university (students' profiles name it the same way).
DEFAULT_UNIVERSITY = "National Taipei University of Technology"


async def company_contacts(settings: PortalSettings, email: str | None = None) -> list[Any]:
    """The company registrations (all, or those whose contact is `email`), from the
    applications service, as the portal asks it."""
    services = Services.create(settings)
    try:
        params = {"contact_email": email} if email else {}
        return list(await services.as_portal().get("applications", "/companies", **params))
    finally:
        await services.close()


async def users(args: argparse.Namespace, settings: PortalSettings) -> int:
    client = connect(settings.mongodb_uri)
    store = PortalStore(client[settings.database])
    try:
        await store.ensure_indexes()
        if args.action == "list":
            for user in await store.list_users():
                print(
                    f"{user['role']:<12} {user['_id']:<40} {user['sub']:<20} "
                    f"{user.get('university') or ''}"
                )
            return 0
        email = normalise_email(args.email or "")
        if email is None:
            print(f"not an e-mail address: {args.email!r}", file=sys.stderr)
            return 2
        if args.action == "remove":
            removed = await store.remove_user(email)
            if removed is None:
                print(f"{email} was not registered")
                return 1
            print(f"removed {email}; their sessions and sign-in links have ended")
            return 0
        role = PortalRole(args.role)
        extra: dict[str, str] = {}
        if args.time_zone:
            try:
                ZoneInfo(args.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                print(f"not an IANA time zone: {args.time_zone!r}", file=sys.stderr)
                return 2
            extra["time_zone"] = args.time_zone
        if role is PortalRole.UNIVERSITY:
            # The office sees only the students of this university.
            extra["university"] = (args.university or DEFAULT_UNIVERSITY).strip()
        existing = await store.find_user(email)
        if existing is None:
            # One address, one person: not a company's contact either.
            try:
                companies = await company_contacts(settings, email)
            except (ApiError, ServiceUnavailable):
                print(
                    f"cannot check whether {email} is a company's contact: the applications "
                    f"service at {settings.applications_url} does not answer (is the platform "
                    "running?)",
                    file=sys.stderr,
                )
                return 1
            taken = taken_by_other(holders(None, companies), role)
            if taken is not None:
                print(
                    f"{email} is the contact of company {taken.sub} ({taken.name}); "
                    "one address may belong to one person only",
                    file=sys.stderr,
                )
                return 1
        user = await store.add_user(email, role, new_id(SUB_PREFIX[role]), name=args.name, **extra)
        if user["role"] != role.value:
            print(f"{email} is already registered as {user['role']}", file=sys.stderr)
            return 1
        where = f", university {user['university']!r}" if user.get("university") else ""
        print(f"{email} may sign in as {role.value} (id {user['sub']}{where})")
        return 0
    finally:
        await client.close()


async def identities(settings: PortalSettings) -> int:
    """Report (never settle) the addresses that belong to more than one live identity: such an
    address signs in as nobody until an operator removes or changes one of them."""
    client = connect(settings.mongodb_uri)
    store = PortalStore(client[settings.database])
    try:
        try:
            companies = await company_contacts(settings)
        except (ApiError, ServiceUnavailable):
            print(
                f"the applications service at {settings.applications_url} does not answer",
                file=sys.stderr,
            )
            return 1
        by_address: dict[str, list[Any]] = defaultdict(list)
        for company in companies:
            address = normalise_email(str(company["contact"]["email"]))
            if address:
                by_address[address].append(company)
        addresses = set(by_address)
        users = {user["_id"]: user for user in await store.list_users()}
        shared = 0
        for address in sorted(addresses | set(users)):
            found = holders(users.get(address), by_address.get(address, []))
            if len(found) > 1:
                shared += 1
                who = "; ".join(f"{h.role.value} {h.sub} ({h.name or '-'})" for h in found)
                print(f"{address}: {who}")
        if shared:
            print(
                f"{shared} address(es) belong to more than one identity and sign in as nobody; "
                "remove the staff entry (user remove), reject the wrong company registration "
                "or change a company's contact address",
                file=sys.stderr,
            )
            return 1
        print("every address belongs to at most one identity")
        return 0
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.portal")
    commands = parser.add_subparsers(dest="command")
    user = commands.add_parser("user", help="people the operator lets sign in")
    user.add_argument("action", choices=["add", "list", "remove"])
    user.add_argument("--role", choices=[r.value for r in OPERATOR_ROLES], default="coordinator")
    user.add_argument("--email")
    user.add_argument("--name", help="shown on the pages (optional)")
    user.add_argument(
        "--university",
        help=f"role university: whose students the office sees (default {DEFAULT_UNIVERSITY!r})",
    )
    user.add_argument(
        "--time-zone", help="IANA zone for dates on the pages (default Asia/Tokyo or Asia/Taipei)"
    )
    commands.add_parser(
        "identities", help="list addresses that belong to more than one live identity"
    )
    args = parser.parse_args(argv)
    if args.command == "user":
        use_local_stack()  # the ports and secret `make run` chose (shared/local_stack.py)
        settings = PortalSettings()
        try:
            # The notifications service hears of coordinators added and removed.
            before = asyncio.run(recipients.coordinator_before(args, settings))
            code = asyncio.run(users(args, settings))
        except PyMongoError:
            print(unreachable("the portal's MongoDB", settings.mongodb_uri), file=sys.stderr)
            return 1
        return asyncio.run(recipients.after_user_command(args, settings, code, before))
    if args.command == "identities":
        use_local_stack()
        settings = PortalSettings()
        try:
            return asyncio.run(identities(settings))
        except PyMongoError:
            print(unreachable("the portal's MongoDB", settings.mongodb_uri), file=sys.stderr)
            return 1
    settings = PortalSettings(_env_file=_embedded_env_file())  # type: ignore[call-arg]
    from services.portal.app import create_app
    from shared.serve import serve

    serve(create_app(settings), settings, settings.http_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
