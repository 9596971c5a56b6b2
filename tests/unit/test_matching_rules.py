"""Eligibility, fit score, residence guidance and whole rounds (pure, no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.domain.residence import residence_status
from services.matching.domain.rounds import run_round
from services.matching.domain.rules import (
    PositionInput,
    Reason,
    RoundInput,
    StudentInput,
    exclusion_reason,
    fit_score,
)
from shared.events.vocabulary import ResidenceStatus

POS = PositionInput(
    id="p1",
    company_id="c1",
    sector="semiconductor",
    seats=1,
    required_skills=("python", "c"),
    min_jlpt="N2",
    start_date=date(2026, 7, 1),
    end_date=date(2026, 8, 31),
)
STU = StudentInput(
    id="s1",
    application_id="a1",
    ranked_position_ids=("p1",),
    department="Electrical Engineering",
    jlpt_level="N2",
    skills=("python",),
    available_from=date(2026, 6, 15),
    available_to=date(2026, 9, 15),
)


def test_each_exclusion_has_its_reason() -> None:
    assert exclusion_reason(STU, POS, None) is None
    cases = [
        (STU, None, None, Reason.POSITION_UNAVAILABLE),
        (STU, replace(POS, seats=0), None, Reason.POSITION_UNAVAILABLE),
        (STU, POS, Reason.PREVIOUSLY_DECLINED, Reason.PREVIOUSLY_DECLINED),
        (replace(STU, consent_to_data_use=False), POS, None, Reason.NO_CONSENT),
        (replace(STU, jlpt_level="N3"), POS, None, Reason.JLPT_BELOW_MINIMUM),
        (replace(STU, jlpt_level=None), POS, None, Reason.JLPT_BELOW_MINIMUM),
        (STU, replace(POS, min_english="B2"), None, Reason.ENGLISH_BELOW_MINIMUM),
        (replace(STU, available_to=date(2026, 8, 1)), POS, None, Reason.AVAILABILITY_GAP),
        (STU, replace(POS, ranking=("s2",)), None, Reason.NOT_RANKED_BY_COMPANY),
    ]
    for student, position, excluded, reason in cases:
        why = exclusion_reason(student, position, excluded)
        assert why is not None and why[0] == reason, (student, position, why)
        assert why[1]  # and a readable detail


def test_fit_score_components() -> None:
    best = fit_score(replace(STU, skills=("python", "c"), jlpt_level="N1"), POS, 1)
    weaker = fit_score(STU, POS, 1)
    assert best > weaker
    # 50 * 1/2 skills + 20 * 0 JLPT margin + 0 English + 10 department + 10 first choice
    assert weaker == 45.0
    no_fit = replace(STU, department="History")
    assert fit_score(no_fit, POS, 1) == 35.0


def test_skills_match_whatever_their_case() -> None:
    # Skills keep the spelling people typed ("OpenCV", "C"); a student's "PYTHON" and "c"
    # are the position's "python" and "C".
    position = replace(POS, required_skills=("Python", "C"))
    typed = replace(STU, skills=("PYTHON", "c"), jlpt_level="N1")
    lower = replace(STU, skills=("python", "c"), jlpt_level="N1")
    assert fit_score(typed, position, 1) == fit_score(lower, POS, 1) == 74.0


def test_residence_status_guidance() -> None:
    july, august = date(2026, 7, 1), date(2026, 8, 31)
    assert residence_status(True, july, august) is ResidenceStatus.DESIGNATED_ACTIVITIES
    assert residence_status(False, july, august) is ResidenceStatus.TEMPORARY_VISITOR
    assert residence_status(False, july, date(2026, 9, 28)) is ResidenceStatus.TEMPORARY_VISITOR
    assert residence_status(False, july, date(2026, 9, 29)) is ResidenceStatus.CULTURAL_ACTIVITIES


def test_company_ranking_beats_fit_score() -> None:
    a = replace(STU, id="a", application_id="aa", skills=("python", "c"))
    b = replace(STU, id="b", application_id="ab", skills=())
    unranked = run_round(RoundInput("c", 1, (a, b), (POS,)))
    assert [p.student_id for p in unranked.pairs] == ["a"]
    ranked = run_round(RoundInput("c", 1, (a, b), (replace(POS, ranking=("b", "a")),)))
    assert [p.student_id for p in ranked.pairs] == ["b"]
    assert ranked.pairs[0].fit_score is None


@st.composite
def round_inputs(draw: st.DrawFn) -> RoundInput:
    n_pos = draw(st.integers(1, 5))
    positions = tuple(
        replace(
            POS,
            id=f"p{i}",
            seats=draw(st.integers(0, 3)),
            min_jlpt=draw(st.sampled_from([None, "N1", "N2", "N3"])),
            required_skills=tuple(draw(st.sets(st.sampled_from(["python", "c", "cad"])))),
            ranking=None,
        )
        for i in range(n_pos)
    )
    ids = [p.id for p in positions]
    students = tuple(
        replace(
            STU,
            id=f"s{i}",
            application_id=f"a{i}",
            ranked_position_ids=tuple(draw(st.permutations(ids))[: draw(st.integers(1, n_pos))]),
            jlpt_level=draw(st.sampled_from([None, "N1", "N2", "N3", "N4"])),
            skills=tuple(draw(st.sets(st.sampled_from(["python", "c", "cad"])))),
            consent_to_data_use=draw(st.booleans()) or draw(st.booleans()),
        )
        for i in range(draw(st.integers(0, 10)))
    )
    return RoundInput("2026-summer", draw(st.integers(0, 2**31)), students, positions)


@settings(max_examples=150, deadline=None)
@given(round_inputs())
def test_rounds_are_valid_deterministic_and_respect_eligibility(round_input: RoundInput) -> None:
    result = run_round(round_input)
    assert result.certificate.valid
    excluded = {(e.student_id, e.position_id) for e in result.exclusions}
    positions = {p.id: p for p in round_input.positions}
    students = {s.id: s for s in round_input.students}
    for pair in result.pairs:
        assert (pair.student_id, pair.position_id) not in excluded
        assert (
            exclusion_reason(students[pair.student_id], positions[pair.position_id], None) is None
        )
    # Same input and seed: the identical result, whatever the order of the input.
    shuffled = replace(
        round_input,
        students=tuple(reversed(round_input.students)),
        positions=tuple(reversed(round_input.positions)),
    )
    again = run_round(shuffled)
    assert again == result
    # The stored (canonical) form reproduces the input exactly.
    restored = RoundInput.from_canonical(round_input.canonical(), round_input.seed)
    assert restored.snapshot_hash() == round_input.snapshot_hash()
    assert run_round(restored) == result
