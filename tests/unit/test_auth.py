from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi import HTTPException

from shared.auth import ALGORITHM, Principal, Role, decode_token, mint_token, require
from shared.settings import CommonSettings, MissingSecretError

SECRET = "s" * 32
COMPANY = "co-0123456789ab"


def settings(secret: str = SECRET) -> CommonSettings:
    return CommonSettings(jwt_secret=secret)  # type: ignore[arg-type]


def forged(**overrides: Any) -> str:
    """A correctly signed token with claims a well-behaved minter would never write."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": "stu-1",
        "role": "student",
        "iss": settings().jwt_issuer,
        "iat": now,
        "exp": now + timedelta(hours=1),
        **overrides,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, ALGORITHM)


def refused(token: str) -> str:
    with pytest.raises(HTTPException) as err:
        decode_token(settings(), token)
    assert err.value.status_code == 401
    return str(err.value.detail)


def test_round_trip() -> None:
    token = mint_token(settings(), Role.STUDENT, "stu-1")
    assert decode_token(settings(), token) == Principal(Role.STUDENT, "stu-1")
    token = mint_token(settings(), Role.UNIVERSITY, "uni-ntut")
    assert decode_token(settings(), token) == Principal(Role.UNIVERSITY, "uni-ntut")


def test_expired_and_forged_tokens_are_refused() -> None:
    expired = mint_token(settings(), Role.STUDENT, "stu-1", ttl=timedelta(seconds=-1))
    assert "expired" in refused(expired)
    other = mint_token(settings("other" * 8), Role.COORDINATOR, "coordinator")
    refused(other)


def test_the_subject_must_be_an_id_of_the_role() -> None:
    # A student token carrying a company's id would let a student act on the company's data.
    assert "is not a student id" in refused(forged(sub=COMPANY))
    assert "is not a company id" in refused(forged(role="company", sub="stu-1"))
    assert "is not a coordinator id" in refused(forged(role="coordinator", sub=COMPANY))
    assert "is not a student id" in refused(forged(sub=""))
    refused(forged(sub="stu-1\n"))
    refused(forged(sub=12345))
    refused(forged(role="admin", sub="root"))
    with pytest.raises(ValueError, match="is not a student id"):
        mint_token(settings(), Role.STUDENT, COMPANY)
    with pytest.raises(ValueError, match="is not a company id"):
        Principal(Role.COMPANY, "stu-1")


def test_the_ids_the_portal_mints_are_ids_of_their_roles() -> None:
    # services/portal: students stu-<12 hex>, operators coord-/uni-<12 hex> (univ- accepted
    # too), and the portal's own coordinator token "portal" (company-contact lookups).
    for role, sub in [
        (Role.STUDENT, "stu-0123456789ab"),
        (Role.COMPANY, COMPANY),
        (Role.COORDINATOR, "coord-0123456789ab"),
        (Role.COORDINATOR, "portal"),
        (Role.UNIVERSITY, "uni-0123456789ab"),
        (Role.UNIVERSITY, "univ-0123456789ab"),
    ]:
        assert decode_token(settings(), mint_token(settings(), role, sub)) == Principal(role, sub)
    # ...and no id of one role is an id of another.
    for role, sub in [
        (Role.COORDINATOR, "stu-0123456789ab"),
        (Role.COORDINATOR, COMPANY),
        (Role.COORDINATOR, "uni-0123456789ab"),
        (Role.COORDINATOR, "univ-0123456789ab"),
        (Role.UNIVERSITY, "coord-0123456789ab"),
        (Role.STUDENT, "uni-0123456789ab"),
    ]:
        with pytest.raises(ValueError, match=f"is not a {role.value} id"):
            Principal(role, sub)


def test_token_lifetime_is_bounded() -> None:
    now = datetime.now(UTC)
    assert "lifetime" in refused(forged(iat=now, exp=now + timedelta(days=365)))
    assert "iat" in refused(forged(iat=None))
    # Issued in the future: not yet valid.
    refused(forged(iat=now + timedelta(hours=1), exp=now + timedelta(hours=2)))
    with pytest.raises(ValueError, match="at most"):
        mint_token(settings(), Role.STUDENT, "stu-1", ttl=timedelta(days=2))
    assert mint_token(settings(), Role.STUDENT, "stu-1", ttl=timedelta(hours=12))


def test_role_check() -> None:
    check = require(Role.COORDINATOR)
    assert check(Principal(Role.COORDINATOR, "c")).sub == "c"
    with pytest.raises(HTTPException) as err:
        check(Principal(Role.STUDENT, "stu-s"))
    assert err.value.status_code == 403


def test_missing_or_short_secret_is_explained() -> None:
    with pytest.raises(MissingSecretError, match="JWT_SECRET is not set"):
        mint_token(CommonSettings(), Role.STUDENT, "stu-1")
    with pytest.raises(MissingSecretError, match="too short"):
        mint_token(settings("short"), Role.STUDENT, "stu-1")
