"""What the services refuse, said in the person's language with the form's labels."""

from __future__ import annotations

import pytest

from services.portal import i18n, problems
from services.portal.clients import ApiError
from services.portal.problems import Problem, describe, describe_all


@pytest.fixture(autouse=True)
def english() -> None:
    i18n.use("en")


def test_malformed_input_is_said_in_words_with_the_forms_label() -> None:
    found = describe(
        {"field": "contact.email", "reason": "value is not a valid email address: no @"},
        problems.CALL,
    )
    assert found == Problem(
        "Please enter a valid e-mail address.", "E-mail address", "contact_email"
    )
    found = describe(
        {"field": "title", "reason": "String should have at most 200 characters"}, problems.POSITION
    )
    assert found == Problem("Please use at most 200 characters.", "Title", "title")
    found = describe(
        {"field": "capacity", "reason": "Input should be greater than or equal to 1"},
        problems.POSITION,
    )
    assert found.text == "Please enter 1 or more." and found.label == "Seats"


def test_a_rule_without_a_field_is_placed_on_the_field_it_is_about() -> None:
    found = describe(
        {"field": None, "reason": "Value error, end_date must be after start_date"},
        problems.POSITION,
    )
    assert found == Problem("The last day must be after the first day.", "Last day", "end_date")


def test_list_items_are_the_lists_field() -> None:
    found = describe(
        {"field": "ranked_position_ids.2", "reason": "position 'pos-1' is closed"},
        problems.APPLICATION,
    )
    assert found == Problem("The position is closed.", "Your choices", "choices")


def test_translated_in_the_persons_language() -> None:
    i18n.use("ja")
    found = describe(
        {"field": None, "reason": "Value error, end_date must be after start_date"},
        problems.POSITION,
    )
    assert found == Problem("終了日は開始日より後の日付にしてください。", "終了日", "end_date")
    i18n.use("zh-TW")
    assert describe({"field": "title", "reason": "Field required"}, problems.POSITION) == Problem(
        "此欄位為必填。", "職缺名稱", "title"
    )


def test_an_unknown_reason_keeps_the_services_words_as_a_detail() -> None:
    i18n.use("zh-TW")
    found = describe({"field": "title", "reason": "must be one line"}, problems.POSITION)
    assert found == Problem("輸入的內容未被接受。", "職缺名稱", "title", "must be one line")
    # A field the form does not know is not named (the sentence still is translated).
    assert describe({"field": "zzz", "reason": "odd"}) == Problem(
        "輸入的內容未被接受。", None, None, "odd"
    )


def test_a_refused_step_names_the_state_it_is_in() -> None:
    found = describe(
        {
            "field": None,
            "reason": "cohort 'c' is finished and cannot become open; it cannot change any more",
            "current_state": "finished",
            "allowed": [],
        }
    )
    assert found == Problem("This cannot be done now: it is “Finished”.")


def test_every_detail_of_a_refusal_is_described() -> None:
    error = ApiError(
        422,
        [
            {"field": "name", "reason": "Field required"},
            {"field": "graduation_year", "reason": "Input should be less than or equal to 2040"},
        ],
    )
    texts = [(p.label, p.text) for p in describe_all(error, problems.PROFILE)]
    assert texts == [
        ("Full name", "Please fill this in."),
        ("Year of graduation", "Please enter 2040 or less."),
    ]
    assert describe_all(ApiError(409, [])) == [Problem("The entry was not accepted.")]
