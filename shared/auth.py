"""Bearer JWT auth with roles, and a CLI to mint tokens for local use.

python -m shared.auth mint --role student --sub stu-001
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.bounds import role_id_problem
from shared.local_stack import use_local_stack
from shared.settings import CommonSettings

ALGORITHM = "HS256"


class Role(StrEnum):
    COORDINATOR = "coordinator"
    COMPANY = "company"
    STUDENT = "student"
    UNIVERSITY = "university"  # the university office: read-only on its own students


@dataclass(frozen=True)
class Principal:
    role: Role
    sub: str  # the student id, the company id, or the coordinator's id
    university: str | None = None  # a university office's own university (a token claim)

    def __post_init__(self) -> None:
        # Every party is its role plus an id of that role's form (shared/bounds.py): a student
        # token whose sub is a company's id, or an empty sub, names no one (ValueError -> 401).
        problem = role_id_problem(self.role.value, self.sub)
        if problem:
            raise ValueError(problem)

    @property
    def is_coordinator(self) -> bool:
        return self.role is Role.COORDINATOR


def mint_token(
    settings: CommonSettings,
    role: Role,
    sub: str,
    ttl: timedelta | None = None,
    *,
    university: str | None = None,
) -> str:
    """A signed token for `sub` acting as `role` (a university office's names its
    `university`). Refuses what `decode_token` would refuse: an id that is not of the role's
    form, or a lifetime over JWT_MAX_TTL_SECONDS."""
    Principal(role, sub)  # raises ValueError for an id that is not of the role's form
    lifetime = ttl or timedelta(seconds=settings.jwt_ttl_seconds)
    if lifetime.total_seconds() > settings.jwt_max_ttl_seconds:
        raise ValueError(
            f"a token may live at most {settings.jwt_max_ttl_seconds} s (JWT_MAX_TTL_SECONDS)"
        )
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": sub,
        "role": role.value,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + lifetime,
    }
    if university is not None:
        claims["university"] = university
    return jwt.encode(claims, settings.require_jwt_secret(), algorithm=ALGORITHM)


def verified_claims(settings: CommonSettings, token: str) -> dict[str, Any]:
    """The token's claims if it is signed with JWT_SECRET, or with JWT_PREVIOUS_SECRET while
    a rotation is under way (README, "Rotating the JWT secret")."""

    def decode(key: str) -> dict[str, Any]:
        return jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "role", "exp", "iat", "iss"]},
        )

    current = settings.require_jwt_secret()
    previous = settings.jwt_previous_secret
    if previous is not None and previous.get_secret_value():
        with contextlib.suppress(jwt.InvalidSignatureError):
            return decode(current)
        return decode(previous.get_secret_value())
    return decode(current)


def decode_token(settings: CommonSettings, token: str) -> Principal:
    try:
        claims = verified_claims(settings, token)
        check_lifetime(settings, claims)
        return Principal(Role(claims["role"]), str(claims["sub"]), university_of(claims))
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"invalid token: {exc}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc


def university_of(claims: dict[str, object]) -> str | None:
    """The university a university office's token names (the portal puts it there)."""
    value = claims.get("university")
    return str(value) if claims.get("role") == Role.UNIVERSITY.value and value else None


def check_lifetime(settings: CommonSettings, claims: dict[str, Any]) -> None:
    """A token may not claim to live longer (exp - iat) than JWT_MAX_TTL_SECONDS: a leaked
    long-lived token would be a standing key. (PyJWT has already checked both are numbers.)"""
    lifetime = float(claims["exp"]) - float(claims["iat"])
    if lifetime > settings.jwt_max_ttl_seconds:
        raise ValueError(
            f"token lifetime {lifetime:.0f} s exceeds the maximum {settings.jwt_max_ttl_seconds} s"
        )


_bearer = HTTPBearer(auto_error=False)


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    settings: CommonSettings = request.app.state.settings
    return decode_token(settings, credentials.credentials)


def require(*roles: Role):
    """A dependency that admits only the given roles (403 with the reason otherwise)."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {principal.role.value!r} may not do this (allowed: {allowed})",
            )
        return principal

    check.roles = roles  # type: ignore[attr-defined]  # read by shared.http for the OpenAPI 403
    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.auth")
    sub = parser.add_subparsers(dest="command", required=True)
    mint = sub.add_parser(
        "mint", help="print a bearer token (uses JWT_SECRET from the environment)"
    )
    mint.add_argument("--role", required=True, choices=[r.value for r in Role])
    mint.add_argument(
        "--sub", required=True, help="stu-..., co-..., uni-... or the coordinator's id"
    )
    mint.add_argument("--hours", type=float, default=8.0)
    mint.add_argument("--university", help="a university office's university (role university)")
    args = parser.parse_args(argv)
    use_local_stack()  # the secret `make run` generated
    settings = CommonSettings()
    hours = timedelta(hours=args.hours)
    print(mint_token(settings, Role(args.role), args.sub, hours, university=args.university))
    return 0


def _embedded_env_file() -> str | None:
    """`make run` keeps its generated secret in <EMBEDDED_DATA_DIR>/embedded.env (default
    .data/); use it when present and JWT_SECRET is not set."""
    path = Path(os.environ.get("EMBEDDED_DATA_DIR", ".data")) / "embedded.env"
    return str(path) if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
