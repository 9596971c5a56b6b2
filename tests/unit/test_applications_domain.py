from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.applications import domain
from shared.errors import DomainError


def test_cohort_id_and_window() -> None:
    now = datetime.now(UTC)
    with pytest.raises(ValidationError, match="2026-summer"):
        domain.CohortIn(
            id="Summer!",
            name="x",
            application_opens=now,
            application_closes=now + timedelta(days=1),
        )
    with pytest.raises(ValidationError, match="after application_opens"):
        domain.CohortIn(id="2026-summer", name="x", application_opens=now, application_closes=now)


def test_window_open_only_in_state_open_and_dates() -> None:
    now = datetime.now(UTC)
    cohort = {
        "_id": "c",
        "state": "open",
        "application_opens": now - timedelta(days=1),
        "application_closes": now + timedelta(days=1),
    }
    assert domain.window_is_open(cohort, now)
    assert not domain.window_is_open({**cohort, "state": "planned"}, now)
    assert not domain.window_is_open(cohort, now + timedelta(days=2))
    with pytest.raises(DomainError) as err:
        domain.check_window({**cohort, "state": "closed"}, now)
    assert err.value.field == "cohort_id"


def test_skills_keep_the_spelling_typed_and_compare_case_insensitively() -> None:
    assert domain.normalise_skills([" Python", "python", "C++ ", ""]) == ["Python", "C++"]
    assert domain.normalise_skills(["OpenCV", "PLC", "C", "opencv", "plc", "c"]) == [
        "OpenCV",
        "PLC",
        "C",
    ]
    assert domain.normalise_skills(["machine  learning", "Machine Learning"]) == [
        "machine learning"
    ]
    assert domain.skill_key("OpenCV") == domain.skill_key("opencv")


def test_ranked_positions_rules() -> None:
    positions = {
        "p1": {"cohort_id": "c1", "state": "open"},
        "p2": {"cohort_id": "c2", "state": "open"},
        "p3": {"cohort_id": "c1", "state": "closed"},
    }
    domain.check_ranked_positions(["p1"], positions, "c1")
    for ranked, field, text in [
        (["p1", "nope"], "ranked_position_ids.1", "does not exist"),
        (["p2"], "ranked_position_ids.0", "belongs to cohort"),
        (["p3"], "ranked_position_ids.0", "closed"),
    ]:
        with pytest.raises(DomainError) as err:
            domain.check_ranked_positions(ranked, positions, "c1")
        assert err.value.field == field
        assert text in err.value.reason


def test_application_rejects_duplicates_and_too_many() -> None:
    with pytest.raises(ValidationError, match="ranked once"):
        domain.ApplicationIn(cohort_id="c", ranked_position_ids=["a", "a"])
    with pytest.raises(ValidationError):
        domain.ApplicationIn(cohort_id="c", ranked_position_ids=[f"p{i}" for i in range(11)])
    with pytest.raises(ValidationError):
        domain.ApplicationIn(cohort_id="c", ranked_position_ids=[])
