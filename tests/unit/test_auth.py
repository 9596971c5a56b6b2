from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import HTTPException

from shared.auth import Principal, Role, decode_token, mint_token, require
from shared.settings import CommonSettings


def settings(secret: str = "s" * 32) -> CommonSettings:
    return CommonSettings(jwt_secret=secret)  # type: ignore[arg-type]


def test_round_trip() -> None:
    token = mint_token(settings(), Role.STUDENT, "stu-1")
    assert decode_token(settings(), token) == Principal(Role.STUDENT, "stu-1")


def test_expired_and_forged_tokens_are_refused() -> None:
    expired = mint_token(settings(), Role.STUDENT, "stu-1", ttl=timedelta(seconds=-1))
    with pytest.raises(HTTPException) as err:
        decode_token(settings(), expired)
    assert err.value.status_code == 401
    assert "expired" in str(err.value.detail)
    forged = mint_token(settings("other" * 8), Role.COORDINATOR, "x")
    with pytest.raises(HTTPException) as err:
        decode_token(settings(), forged)
    assert err.value.status_code == 401


def test_role_check() -> None:
    check = require(Role.COORDINATOR)
    assert check(Principal(Role.COORDINATOR, "c")).sub == "c"
    with pytest.raises(HTTPException) as err:
        check(Principal(Role.STUDENT, "s"))
    assert err.value.status_code == 403


def test_missing_secret_is_explained() -> None:
    with pytest.raises(RuntimeError, match="JWT_SECRET is not set"):
        mint_token(CommonSettings(), Role.STUDENT, "s")


def test_a_previous_secret_is_accepted_during_a_rotation_but_never_signs() -> None:
    old, new = "o" * 32, "n" * 32
    rotating = CommonSettings(jwt_secret=new, jwt_previous_secret=old)  # type: ignore[arg-type]
    before = mint_token(settings(old), Role.STUDENT, "stu-1")
    assert decode_token(rotating, before) == Principal(Role.STUDENT, "stu-1")
    after = mint_token(rotating, Role.COMPANY, "co-1")
    assert decode_token(settings(new), after) == Principal(Role.COMPANY, "co-1")
    with pytest.raises(HTTPException) as err:  # signed with the new key, not the old one
        decode_token(settings(old), after)
    assert err.value.status_code == 401
    # Once the rotation is over (the previous secret removed), old tokens are refused.
    with pytest.raises(HTTPException) as err:
        decode_token(settings(new), before)
    assert err.value.status_code == 401
    # A key neither current nor previous is refused, and so is an expired token by the old key.
    with pytest.raises(HTTPException):
        decode_token(rotating, mint_token(settings("x" * 32), Role.STUDENT, "stu-1"))
    expired = mint_token(settings(old), Role.STUDENT, "stu-1", ttl=timedelta(seconds=-1))
    with pytest.raises(HTTPException) as err:
        decode_token(rotating, expired)
    assert "expired" in str(err.value.detail)
