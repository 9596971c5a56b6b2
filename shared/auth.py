"""Bearer JWT auth with roles, and a CLI to mint tokens for local use.

python -m shared.auth mint --role student --sub stu-001
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.bounds import role_id_problem
from shared.settings import CommonSettings

ALGORITHM = "HS256"


class Role(StrEnum):
    COORDINATOR = "coordinator"
    COMPANY = "company"
    STUDENT = "student"
    # The university office (read-only on its own students); no service admits it yet.
    UNIVERSITY = "university"


@dataclass(frozen=True)
class Principal:
    role: Role
    # The student id, the company id, the university office's or the coordinator's id; it
    # matches the id pattern of its role (shared/bounds.py), so ids of two roles never collide.
    sub: str

    @property
    def is_coordinator(self) -> bool:
        return self.role is Role.COORDINATOR


def mint_token(settings: CommonSettings, role: Role, sub: str, ttl: timedelta | None = None) -> str:
    """A signed token for `sub` acting as `role`. Refuses what `decode_token` would refuse: an
    id that is not of the role's form, or a lifetime over JWT_MAX_TTL_SECONDS."""
    problem = role_id_problem(role.value, sub)
    if problem:
        raise ValueError(problem)
    lifetime = ttl or timedelta(seconds=settings.jwt_ttl_seconds)
    if lifetime.total_seconds() > settings.jwt_max_ttl_seconds:
        raise ValueError(
            f"a token may live at most {settings.jwt_max_ttl_seconds} s (JWT_MAX_TTL_SECONDS)"
        )
    now = datetime.now(UTC)
    claims = {
        "sub": sub,
        "role": role.value,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, settings.require_jwt_secret(), algorithm=ALGORITHM)


def decode_token(settings: CommonSettings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.require_jwt_secret(),
            algorithms=[ALGORITHM],
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "role", "exp", "iat", "iss"]},
        )
        return Principal(role=Role(claims["role"]), sub=_checked_sub(settings, claims))
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"invalid token: {exc}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc


def _checked_sub(settings: CommonSettings, claims: dict[str, object]) -> str:
    """The token's subject, when it is a well-formed id of the token's role and the token does
    not claim a lifetime longer than allowed (a stolen long-lived token is a standing key)."""
    sub, role = claims["sub"], claims["role"]
    if not isinstance(sub, str) or not isinstance(role, str):
        raise ValueError("sub and role must be strings")
    problem = role_id_problem(role, sub)
    if problem:
        raise ValueError(problem)
    lifetime = float(claims["exp"]) - float(claims["iat"])  # type: ignore[arg-type]
    if lifetime > settings.jwt_max_ttl_seconds:
        raise ValueError(
            f"token lifetime {lifetime:.0f} s exceeds the maximum {settings.jwt_max_ttl_seconds} s"
        )
    return sub


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
    args = parser.parse_args(argv)
    settings = CommonSettings(_env_file=_embedded_env_file())  # type: ignore[call-arg]
    try:
        print(mint_token(settings, Role(args.role), args.sub, timedelta(hours=args.hours)))
    except (ValueError, RuntimeError) as exc:
        print(f"cannot mint this token: {exc}", file=sys.stderr)
        return 2
    return 0


def _embedded_env_file() -> str | None:
    """`make run` keeps its generated secret in <EMBEDDED_DATA_DIR>/embedded.env (default
    .data/); use it when present and JWT_SECRET is not set."""
    path = Path(os.environ.get("EMBEDDED_DATA_DIR", ".data")) / "embedded.env"
    return str(path) if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
