"""The public event contract: envelope, catalog, schemas and their compatibility rules."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime

import pytest

from shared.events import CATALOG, ApplicationSubmitted, make_event, parse_event
from shared.events.schemas import SCHEMA_DIR, all_schemas, compatibility_problems, dump

V1_CATALOG = {
    "position-published",
    "position-closed",
    "application-submitted",
    "application-withdrawn",
    "applicants-ranked",
    "match-proposed",
    "match-accepted",
    "match-declined",
    "match-expired",
    "placement-confirmed",
    "round-completed",
    # The lifecycle (issue 7): new types, so v1 stays compatible.
    "match-cancelled",
    "placement-cancelled",
    "cohort-state-changed",
    "company-status-changed",
    "student-profile-updated",
    # Outcomes (issue 10): new types.
    "internship-completed",
    "outcome-recorded",
    # Bounded events (issue 20): a round's unmatched applications in parts of their own.
    "applications-not-matched",
}
PERSONAL_FIELDS = {"name", "email", "phone", "address", "motivation", "statement", "birthday"}


def submitted() -> ApplicationSubmitted:
    return ApplicationSubmitted(
        application_id="app-1",
        cohort_id="2026-summer",
        student_id="stu-1",
        ranked_position_ids=["pos-1", "pos-2"],
        department="EE",
        degree_program="master",
        graduation_year=2027,
        jlpt_level="N2",
        skills=["python"],
        available_from=date(2026, 6, 1),
        available_to=date(2026, 9, 1),
        consent_to_data_use=True,
        submitted_at=datetime(2026, 5, 1, tzinfo=UTC),
    )


def test_the_whole_v1_catalog_is_modelled() -> None:
    assert set(CATALOG) == V1_CATALOG


def test_no_personal_data_fields_in_public_events() -> None:
    for name, model in CATALOG.items():
        fields = set(model.model_fields)
        assert not fields & PERSONAL_FIELDS, (name, fields & PERSONAL_FIELDS)


def test_placement_cancellation_carries_a_note_code_never_free_text() -> None:
    from pydantic import ValidationError

    from shared.events import PlacementCancelled

    facts = {
        "placement_id": "plc-1",
        "proposal_id": "prop-1",
        "round_id": "r",
        "cohort_id": "c",
        "student_id": "s",
        "position_id": "p",
        "company_id": "co",
        "application_id": "app",
        "sector": "automotive",
        "reason": "program_decision",
        "cancelled_at": datetime(2027, 5, 1, tzinfo=UTC),
    }
    assert PlacementCancelled(**facts, note_code="KK-2027/014").note_code == "KK-2027/014"
    with pytest.raises(ValidationError):
        PlacementCancelled(**facts, note_code="林さんが体調不良のため")
    with pytest.raises(ValidationError):
        PlacementCancelled(**{**facts, "reason": "health"})


def test_envelope_round_trip() -> None:
    event = make_event(submitted(), source="/services/applications", subject="app-1")
    parsed = parse_event(event.to_bytes(), expected="application-submitted")
    assert parsed == event
    raw = json.loads(event.to_bytes())
    assert raw["specversion"] == "1.0"
    assert raw["datacontenttype"] == "application/json"
    assert raw["type"] == "jp.kitakyushu.internship.application-submitted.v1"
    assert raw["dataschema"] == "urn:kitakyushu-internship:schema:application-submitted:v1"
    assert set(raw) >= {"id", "source", "type", "time", "subject", "data"}


def test_parse_refuses_wrong_topic_unknown_type_and_bad_payload() -> None:
    event = make_event(submitted(), source="/s", subject="app-1")
    with pytest.raises(ValueError, match="does not belong on topic"):
        parse_event(event.to_bytes(), expected="position-closed")
    raw = json.loads(event.to_bytes())
    raw["type"] = "jp.kitakyushu.internship.nonsense.v1"
    with pytest.raises(ValueError, match="unknown event type"):
        parse_event(json.dumps(raw))
    raw = json.loads(event.to_bytes())
    raw["data"]["ranked_position_ids"] = []
    with pytest.raises(ValueError, match="ranked_position_ids"):
        parse_event(json.dumps(raw))
    raw = json.loads(event.to_bytes())
    raw["type"] = raw["type"].replace(".v1", ".v2")
    with pytest.raises(ValueError, match="major version"):
        parse_event(json.dumps(raw))


def test_new_optional_fields_from_a_newer_minor_are_tolerated() -> None:
    raw = json.loads(make_event(submitted(), source="/s", subject="app-1").to_bytes())
    raw["data"]["added_later"] = "x"
    raw["traceparent"] = "00-abc"  # a CloudEvents extension attribute
    assert parse_event(json.dumps(raw)).data.application_id == "app-1"


def test_checked_in_schemas_are_up_to_date() -> None:
    for file_name, schema in all_schemas().items():
        path = SCHEMA_DIR / file_name
        assert path.exists(), f"{file_name} missing: run `make schemas`"
        assert path.read_text(encoding="utf-8") == dump(schema), (
            f"{file_name} differs from the models: run `make schemas` and review the diff"
        )


def test_models_are_backward_compatible_with_checked_in_schemas() -> None:
    for file_name, schema in all_schemas().items():
        published = json.loads((SCHEMA_DIR / file_name).read_text(encoding="utf-8"))
        assert compatibility_problems(published, schema) == [], file_name


def _schema() -> dict:
    return json.loads((SCHEMA_DIR / "application-submitted.v1.json").read_text())


def test_compat_check_flags_a_removed_field() -> None:
    new = _schema()
    del new["$defs"]["ApplicationSubmitted"]["properties"]["department"]
    new["$defs"]["ApplicationSubmitted"]["required"].remove("department")
    assert compatibility_problems(_schema(), new) == ["data.department: field removed or renamed"]


def test_compat_check_flags_a_retyped_field() -> None:
    new = _schema()
    new["$defs"]["ApplicationSubmitted"]["properties"]["graduation_year"] = {"type": "string"}
    problems = compatibility_problems(_schema(), new)
    assert problems == ["data.graduation_year: type changed from ['integer'] to ['string']"]


def test_compat_check_flags_a_new_required_field() -> None:
    new = _schema()
    props = new["$defs"]["ApplicationSubmitted"]
    props["properties"]["gpa"] = {"type": "number"}
    props["required"].append("gpa")
    assert compatibility_problems(_schema(), new) == [
        "data.gpa: new required field (add it with a default instead)"
    ]


def test_compat_check_flags_a_removed_enum_value() -> None:
    new = _schema()
    new["$defs"]["JLPTLevel"]["enum"].remove("N5")
    assert compatibility_problems(_schema(), new) == [
        "data.jlpt_level: enum values removed: ['N5']"
    ]


def test_compat_check_accepts_an_optional_addition() -> None:
    old = _schema()
    new = copy.deepcopy(old)
    new["$defs"]["ApplicationSubmitted"]["properties"]["gpa"] = {"type": "number", "default": 0}
    assert compatibility_problems(old, new) == []


def test_a_not_matched_part_lists_at_most_its_bound_and_a_round_keeps_counts() -> None:
    from pydantic import ValidationError

    from shared.events import ApplicationRef, ApplicationsNotMatched
    from shared.events.catalog import MAX_NOT_MATCHED_PER_EVENT

    refs = [
        ApplicationRef(application_id=f"app-{n}", student_id=f"stu-{n}")
        for n in range(MAX_NOT_MATCHED_PER_EVENT + 1)
    ]
    common = {
        "round_id": "round-1",
        "cohort_id": "2026-summer",
        "round_number": 1,
        "part": 1,
        "parts": 1,
        "completed_at": datetime(2026, 6, 1, tzinfo=UTC),
    }
    part = ApplicationsNotMatched(**common, applications=refs[:-1])
    assert part.key == "2026-summer"  # keyed by cohort: the parts keep their order
    with pytest.raises(ValidationError):
        ApplicationsNotMatched(**common, applications=refs)
    with pytest.raises(ValidationError):
        ApplicationsNotMatched(**common, applications=[])
    schema = all_schemas()["applications-not-matched.v1.json"]
    applications = schema["$defs"]["ApplicationsNotMatched"]["properties"]["applications"]
    assert applications["maxItems"] == MAX_NOT_MATCHED_PER_EVENT
    # round-completed keeps its (now empty by default) list: v1 removes no field.
    round_data = all_schemas()["round-completed.v1.json"]["$defs"]["RoundCompleted"]
    assert "unmatched_applications" in round_data["properties"]
    assert "unmatched_applications" not in round_data.get("required", [])
