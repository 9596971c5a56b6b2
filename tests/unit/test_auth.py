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


def test_a_university_office_token_names_its_university() -> None:
    token = mint_token(settings(), Role.UNIVERSITY, "uni-1", university="Taipei Tech")
    assert decode_token(settings(), token) == Principal(Role.UNIVERSITY, "uni-1", "Taipei Tech")
    # Only a university office's token carries one.
    other = mint_token(settings(), Role.STUDENT, "stu-1", university="Taipei Tech")
    assert decode_token(settings(), other).university is None
