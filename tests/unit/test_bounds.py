"""Bounds on every input: request models and event contracts refuse what cannot be right, with
the field and a reason, and whatever the API accepts fits the events it publishes."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.applications import domain
from shared.bounds import (
    INT64_MAX,
    MAX_RANKED_APPLICANTS,
    MAX_REQUIRED_SKILLS,
    MAX_SKILL,
    MAX_STUDENT_SKILLS,
    first_repeated,
    role_id_problem,
)
from shared.events import (
    ApplicantsRanked,
    ApplicationSubmitted,
    ContactRecord,
    PositionPublished,
    RoundCompleted,
    make_event,
    parse_event,
)

NEXT_YEAR = datetime.now(UTC).year + 1


def errors(model: Any, data: dict[str, Any]) -> dict[str, str]:
    """field -> reason, as the API reports them."""
    with pytest.raises(ValidationError) as err:
        model.model_validate(data)
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in err.value.errors()}


def student(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "林怡君",
        "email": "yijun@example.tw",
        "department": "Electrical Engineering",
        "degree_program": "master",
        "graduation_year": 2028,
        "skills": ["python"],
        "available_from": f"{NEXT_YEAR}-06-15",
        "available_to": f"{NEXT_YEAR}-09-15",
        "consent_to_data_use": True,
        **overrides,
    }


def position(**overrides: Any) -> dict[str, Any]:
    return {
        "cohort_id": f"{NEXT_YEAR}-summer",
        "title": "Wafer inspection software",
        "track": "development_design_programming",
        "capacity": 2,
        "paid": True,
        "start_date": f"{NEXT_YEAR}-07-01",
        "end_date": f"{NEXT_YEAR}-08-31",
        "location": "Kitakyushu Science and Research Park",
        **overrides,
    }


def test_coercion_that_hides_mistakes_is_refused() -> None:
    assert "paid" in errors(domain.PositionIn, position(paid="yes"))
    assert "paid" in errors(domain.PositionIn, position(paid=1))
    assert "capacity" in errors(domain.PositionIn, position(capacity="2"))
    assert "consent_to_data_use" in errors(domain.StudentIn, student(consent_to_data_use=1))
    assert "consent_to_data_use" in errors(domain.StudentIn, student(consent_to_data_use="true"))
    # A date is a date: not a Unix time, not a date-time.
    assert errors(domain.StudentIn, student(available_from=1_800_000_000)) == {
        "available_from": "Value error, must be a date written as YYYY-MM-DD"
    }
    assert "available_from" in errors(
        domain.StudentIn, student(available_from=f"{NEXT_YEAR}-06-15T00:00:00")
    )


def test_implausible_dates_are_refused() -> None:
    reasons = errors(domain.StudentIn, student(available_from="0001-01-01"))
    assert reasons == {"available_from": "Value error, must be between 2000-01-01 and 2100-12-31"}
    assert "available_to" in errors(domain.StudentIn, student(available_to="9999-12-31"))
    # A position is not in the past, and lasts at most a year.
    past = errors(domain.PositionIn, position(start_date="2020-07-01", end_date="2020-08-31"))
    assert "start_date must not be in the past" in past["start_date"]
    too_long = errors(domain.PositionIn, position(end_date=f"{NEXT_YEAR + 3}-01-01"))
    assert "at most a year" in too_long["end_date"]


def test_datetimes_must_carry_a_time_zone() -> None:
    reasons = errors(
        domain.CohortIn,
        {
            "id": f"{NEXT_YEAR}-summer",
            "name": "第1期生",
            "application_opens": f"{NEXT_YEAR}-01-01T00:00:00",  # naive
            "application_closes": f"{NEXT_YEAR}-03-01T00:00:00+09:00",
        },
    )
    assert list(reasons) == ["application_opens"]
    assert "time zone" in reasons["application_opens"]


def test_line_breaks_never_reach_a_mail_header() -> None:
    for bad in ("Evil\r\nBcc: victim@example.com", "a\nb", "tab\there", "nul\x00", "ls\u2028x"):
        assert "name" in errors(domain.StudentIn, student(name=bad)), bad
        contact = {"name": bad, "email": "x@example.jp"}
        assert "contact.name" in errors(
            domain.CompanyIn,
            {
                "name_ja": "社",
                "name_en": "Co",
                "sector": "automotive",
                "ward": "Kokura",
                "address": "1",
                "contact": contact,
            },
        )
    # Free text may have line breaks, but not other control characters.
    assert domain.ApplicationIn(
        cohort_id="2027-summer", ranked_position_ids=["pos-1"], motivation="Line 1\nLine 2"
    )
    assert "motivation" in errors(
        domain.ApplicationIn,
        {"cohort_id": "2027-summer", "ranked_position_ids": ["pos-1"], "motivation": "a\x1bb"},
    )


def test_bidi_controls_are_removed_from_names_and_text() -> None:
    """U+202E in a company name would show what follows it reversed, on every page and in
    every e-mail: embeddings, overrides and isolates are dropped where the text comes in."""
    company = domain.CompanyIn.model_validate(
        {
            "name_ja": "北九州\u202e製作所",
            "name_en": "\u202aKitakyushu \u202dWorks\u202c",
            "sector": "automotive",
            "ward": "Kokura\u2066",
            "address": "1-1\u2067 Asano\u2068\u2069",
            "contact": {"name": "\u202bSato", "email": "sato@example.jp"},
        }
    )
    assert (company.name_ja, company.name_en, company.ward, company.address) == (
        "北九州製作所",
        "Kitakyushu Works",
        "Kokura",
        "1-1 Asano",
    )
    assert company.contact.name == "Sato"
    # Titles, skills, places and free text alike; the marks LRM/RLM open nothing and stay.
    pos = domain.PositionIn.model_validate(
        position(
            title="Inspection \u202egnirts",
            description="Line 1\n\u202eLine 2",
            required_skills=["py\u202ethon"],
            location="Tobata\u200e",
        )
    )
    assert pos.title == "Inspection gnirts" and pos.description == "Line 1\nLine 2"
    assert pos.required_skills == ["python"] and pos.location == "Tobata\u200e"
    # Nothing left is nothing given.
    assert "name" in errors(domain.StudentIn, student(name="\u202e\u2066"))
    # The bound counts what is kept.
    assert domain.StudentIn.model_validate(student(name="x" * 200 + "\u202e")).name == "x" * 200
    # Consumers read events the same way (an event written before this rule).
    data = maximal_events()[0]
    raw = make_event(data, source="/s", subject=data.key).model_dump(mode="json")
    raw["data"]["company_name_ja"] = "社\u202e"
    assert parse_event(json.dumps(raw)).data.company_name_ja == "社"


def test_lengths_and_counts_are_bounded() -> None:
    assert "university" in errors(domain.StudentIn, student(university="x" * 10_000))
    assert "skills.0" in errors(domain.StudentIn, student(skills=["x" * 30_000]))
    assert "skills" in errors(domain.StudentIn, student(skills=["s"] * (MAX_STUDENT_SKILLS + 1)))
    assert "ranked_student_ids" in errors(
        domain.RankingIn, {"ranked_student_ids": [f"stu-{i}" for i in range(20_000)]}
    )
    # Skills are kept as typed, so the bound holds as it was checked ('İ' is not lengthened
    # by lower-casing); they compare case-insensitively.
    typed = domain.StudentIn.model_validate(student(skills=["İ" * MAX_SKILL]))
    assert typed.skills == ["İ" * MAX_SKILL]


def test_duplicate_check_is_linear() -> None:
    ids = [f"stu-{i}" for i in range(MAX_RANKED_APPLICANTS)]
    assert first_repeated(ids + ids[:3]) == ids[:3]
    many = [f"stu-{i}" for i in range(200_000)]
    started = time.perf_counter()
    assert first_repeated(many) == []
    # The quadratic version took minutes here; linear takes milliseconds (generous bound).
    assert time.perf_counter() - started < 2.0


def test_role_ids_never_look_alike() -> None:
    assert role_id_problem("student", "stu-109590001") is None
    assert role_id_problem("company", "co-0123456789ab") is None
    assert role_id_problem("university", "uni-ntut") is None
    assert role_id_problem("coordinator", "city-officer-1") is None
    for role, ident in [
        ("student", "co-0123456789ab"),
        ("company", "stu-1"),
        ("coordinator", "stu-1"),
        ("coordinator", "co-0123456789ab"),
        ("student", ""),
        ("student", "stu-1\n"),
        ("student", "STU-1"),
    ]:
        assert role_id_problem(role, ident), (role, ident)


def maximal_events() -> list[Any]:
    """The largest events the API's bounds allow: they must validate (the API never builds an
    event its own contract refuses)."""
    skill = "x" * MAX_SKILL
    long_name = "名" * 200
    return [
        PositionPublished(
            position_id="pos-0123456789ab",
            cohort_id="2027-summer",
            company_id="co-0123456789ab",
            company_name_ja=long_name,
            company_name_en="N" * 200,
            sector="semiconductor",
            track="joint_research",
            title="T" * 200,
            capacity=100,
            required_skills=[f"{i}{skill}"[:MAX_SKILL] for i in range(MAX_REQUIRED_SKILLS)],
            paid=False,
            start_date=date(2100, 1, 1),
            end_date=date(2100, 12, 31),
            location="L" * 300,
        ),
        ApplicationSubmitted(
            application_id="app-0123456789ab",
            cohort_id="2027-summer",
            student_id="stu-" + "9" * 40,
            ranked_position_ids=[f"pos-{i:012d}" for i in range(10)],
            department=long_name,
            degree_program="d" * 100,
            graduation_year=2040,
            skills=[f"{i}{skill}"[:MAX_SKILL] for i in range(MAX_STUDENT_SKILLS)],
            available_from=date(2000, 1, 1),
            available_to=date(2100, 12, 31),
            consent_to_data_use=True,
            submitted_at=datetime.now(UTC),
        ),
        ApplicantsRanked(
            position_id="pos-0123456789ab",
            cohort_id="2027-summer",
            company_id="co-0123456789ab",
            ranked_student_ids=[f"stu-{i}" for i in range(MAX_RANKED_APPLICANTS)],
            ranked_at=datetime.now(UTC),
        ),
    ]


def test_the_largest_valid_events_fit_the_broker() -> None:
    for data in maximal_events():
        event = make_event(data, source="/services/applications", subject=data.key)
        assert len(event.to_bytes()) < 1024 * 1024 // 4, data.event_name
        assert parse_event(event.to_bytes()).data == data


def round_completed(**overrides: Any) -> dict[str, Any]:
    data = RoundCompleted(
        round_id="round-2027-summer-1",
        cohort_id="2027-summer",
        round_number=1,
        algorithm_version="da-1",
        seed=7,
        input_hash="0" * 64,
        students=1,
        seats=1,
        proposed=1,
        unmatched=0,
        excluded_pairs=0,
        stable=True,
        completed_at=datetime.now(UTC),
    )
    raw = make_event(data, source="/s", subject=data.key).model_dump(mode="json")
    raw["data"].update(overrides)
    return raw


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", 2**64),  # would fail the MongoDB write (int64), three times, before the DLQ
        ("seed", -1),
        ("students", INT64_MAX + 1),
        ("completed_at", "2027-07-01T00:00:00"),  # naive: would not compare with aware ones
        ("completed_at", 1_800_000_000),
        ("stable", "yes"),
        ("algorithm_version", "x" * 10_000),
    ],
)
def test_a_consumer_refuses_out_of_range_events_when_parsing(field: str, value: Any) -> None:
    import json

    with pytest.raises(ValueError, match=field):
        parse_event(json.dumps(round_completed(**{field: value})))


def test_contact_records_are_bound_to_their_role() -> None:
    ok = ContactRecord(party_id="co-0123456789ab", party_type="company", name="N", email="a@b.jp")
    assert ok.key == "company:co-0123456789ab"
    with pytest.raises(ValidationError, match="is not a student id"):
        ContactRecord(party_id="co-0123456789ab", party_type="student", name="N", email="a@b.jp")
    with pytest.raises(ValidationError, match="party_type"):
        ContactRecord(party_id="stu-1", party_type="admin", name="N", email="a@b.jp")
    with pytest.raises(ValidationError, match="name"):
        ContactRecord(party_id="stu-1", party_type="student", name="a\r\nb", email="a@b.jp")


def test_timestamps_in_request_models_are_not_unix_times() -> None:
    reasons = errors(
        domain.CohortIn,
        {
            "id": f"{NEXT_YEAR}-summer",
            "name": "x",
            "application_opens": "1800000000",
            "application_closes": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
    )
    assert list(reasons) == ["application_opens"]


# String formats whose parser bounds the value itself (a date-time of 10 KB does not parse).
SELF_BOUNDED_FORMATS = {"date", "date-time", "uuid", "email"}


def unbounded_parts(schema: dict[str, Any]) -> list[str]:
    """Paths in an event's JSON Schema that would admit a value of any size."""
    defs = schema.get("$defs", {})
    found: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if "$ref" in node:
            walk(defs[node["$ref"].rsplit("/", 1)[-1]], path)
            return
        for part in node.get("anyOf", []):
            walk(part, path)
        kind = node.get("type")
        if "enum" in node or "const" in node or kind in ("boolean", "null"):
            return
        if kind == "string" and not (
            "maxLength" in node or node.get("format") in SELF_BOUNDED_FORMATS
        ):
            found.append(path)
        if kind == "integer" and not ("maximum" in node and "minimum" in node):
            found.append(path)
        if kind == "number" and not ("maximum" in node and "minimum" in node):
            found.append(path)
        if kind == "array":
            if "maxItems" not in node:
                found.append(path)
            walk(node.get("items", {}), f"{path}[]")
        if kind == "object":
            for name, child in node.get("properties", {}).items():
                walk(child, f"{path}.{name}" if path else name)
            # CloudEvents extension attributes on the envelope: allowed by the specification,
            # never read, bounded as a whole by the broker's message size.
            if path and node.get("additionalProperties") not in (None, False):
                found.append(f"{path}.*")

    walk(schema, "")
    return found


def test_every_field_of_every_event_is_bounded() -> None:
    """The lifecycle's events included (match-cancelled, placement-cancelled,
    cohort-state-changed, company-status-changed, student-profile-updated): a consumer refuses
    an out-of-range value when it parses the event, never later in its handler or its write."""
    from shared.events.schemas import all_schemas

    schemas = all_schemas()
    assert {"match-cancelled.v1.json", "student-profile-updated.v1.json"} <= set(schemas)
    problems = {name: unbounded_parts(schema) for name, schema in schemas.items()}
    assert {name: parts for name, parts in problems.items() if parts} == {}


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("company-status-changed", "closed_position_ids", ["pos-1"] * 10_001),
        ("student-profile-updated", "graduation_year", 10**20),
        ("student-profile-updated", "updated_at", "2027-07-01T00:00:00"),
        ("match-cancelled", "proposal_id", "p" * 101),
        ("placement-cancelled", "note_code", "free text with a name in it"),
        ("cohort-state-changed", "application_opens", "0001-01-01T00:00:00Z"),
    ],
)
def test_the_lifecycle_events_are_bounded_too(name: str, field: str, value: Any) -> None:
    import json

    from shared.events.catalog import CATALOG

    model = CATALOG[name]
    valid = {
        "company-status-changed": {
            "company_id": "co-0123456789ab",
            "status": "suspended",
            "sector": "automotive",
            "changed_at": datetime.now(UTC),
        },
        "student-profile-updated": {
            "student_id": "stu-1",
            "department": "EE",
            "degree_program": "master",
            "graduation_year": 2028,
            "available_from": date(2027, 6, 15),
            "available_to": date(2027, 9, 15),
            "consent_to_data_use": True,
            "updated_at": datetime.now(UTC),
        },
        "match-cancelled": {
            "proposal_id": "prop-1",
            "round_id": "round-1",
            "cohort_id": "2027-summer",
            "student_id": "stu-1",
            "position_id": "pos-1",
            "company_id": "co-0123456789ab",
            "application_id": "app-1",
            "sector": "automotive",
            "reason": "coordinator",
            "cancelled_at": datetime.now(UTC),
        },
        "placement-cancelled": {
            "placement_id": "plc-1",
            "proposal_id": "prop-1",
            "round_id": "round-1",
            "cohort_id": "2027-summer",
            "student_id": "stu-1",
            "position_id": "pos-1",
            "company_id": "co-0123456789ab",
            "application_id": "app-1",
            "sector": "automotive",
            "reason": "program_decision",
            "cancelled_at": datetime.now(UTC),
        },
        "cohort-state-changed": {
            "cohort_id": "2027-summer",
            "to_state": "open",
            "application_opens": datetime.now(UTC),
            "application_closes": datetime.now(UTC) + timedelta(days=30),
            "changed_at": datetime.now(UTC),
        },
    }[name]
    data = model.model_validate(valid)
    raw = make_event(data, source="/s", subject=data.key).model_dump(mode="json")
    assert parse_event(json.dumps(raw)).data == data
    raw["data"][field] = value
    with pytest.raises(ValueError, match=field):
        parse_event(json.dumps(raw))


def test_a_company_has_a_bounded_number_of_open_positions() -> None:
    from shared.bounds import MAX_LISTED_IDS
    from shared.errors import DomainError

    assert domain.MAX_OPEN_POSITIONS < MAX_LISTED_IDS  # its rejection fits in one event
    domain.check_open_positions(domain.MAX_OPEN_POSITIONS - 1)
    with pytest.raises(DomainError) as err:
        domain.check_open_positions(domain.MAX_OPEN_POSITIONS)
    assert err.value.status_code == 409 and err.value.field == "company_id"
