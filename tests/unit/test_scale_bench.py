"""The scale benchmark's pure parts: which mails a round causes and how many, how lost and
duplicated mails are counted, the capacities, the thirds ratio and the printed lines."""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.scale_bench import (
    PROPOSAL_TEMPLATES,
    RESPOND_WITHIN_HOURS,
    ROUND_TEMPLATES,
    Figures,
    count_round_mails,
    expected_round_mails,
    growth_lines,
    percentile,
    plan_capacities,
    result_lines,
    thirds_ratio,
)
from services.notifications.domain import plan
from shared.bounds import MAX_CAPACITY
from shared.events import MatchProposed, make_event

TEMPLATES = Path(__file__).resolve().parents[2] / "services" / "notifications" / "templates"
T0 = datetime(2027, 5, 1, tzinfo=UTC)


def test_a_proposal_mails_both_parties_now_and_its_reminders_fall_after_the_benchmark() -> None:
    proposal = MatchProposed(
        proposal_id="p",
        round_id="r",
        cohort_id="c",
        student_id="s",
        position_id="pos",
        company_id="co",
        sector="automotive",
        student_rank=1,
        residence_status="temporary_visitor",
        respond_by=T0 + timedelta(hours=RESPOND_WITHIN_HOURS),
        proposed_at=T0,
        application_id="a",
    )
    planned = plan(make_event(proposal, source="/t", subject="p"))
    now = [p.template for p in planned if p.not_before is None]
    assert tuple(now) == PROPOSAL_TEMPLATES
    later = [p.not_before for p in planned if p.not_before is not None]
    assert later and min(later) - T0 > timedelta(days=7)


def test_every_counted_template_exists() -> None:
    for template in ROUND_TEMPLATES:
        assert (TEMPLATES / "en" / f"{template}.j2").is_file(), template


def test_a_round_expects_two_mails_per_proposal_one_per_unmatched_student_and_a_summary() -> None:
    assert expected_round_mails(proposed=700, unmatched=300) == 1701
    assert expected_round_mails(proposed=0, unmatched=0) == 1


def test_lost_and_duplicated_mails_are_told_apart_by_message_id() -> None:
    counted = count_round_mails(["<a>", "<b>", "<b>", "<c>"], expected=5)
    assert (counted.received, counted.unique, counted.duplicated, counted.lost) == (4, 3, 1, 2)
    assert count_round_mails(["<a>", "<b>"], expected=2).lost == 0


def test_capacities_add_up_to_the_seats_within_bounds() -> None:
    for positions, seats in ((42, 270), (140, 900), (1400, 9000), (3, 3)):
        caps = plan_capacities(positions, seats, random.Random(positions))
        assert len(caps) == positions
        assert sum(caps) == seats
        assert all(1 <= c <= MAX_CAPACITY for c in caps)
    assert len(set(plan_capacities(140, 900, random.Random(1)))) > 3  # varied, not all equal


def test_the_thirds_ratio_compares_the_last_thirds_rate_with_the_firsts() -> None:
    steady = [float(i) for i in range(1, 10)]
    assert thirds_ratio(0.0, steady) == 1.0
    # The last three took 3 s each, the first three 1 s each: a third of the rate.
    slowing = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0, 12.0, 15.0]
    assert thirds_ratio(0.0, slowing) == 1 / 3
    assert math.isnan(thirds_ratio(0.0, [1.0, 2.0]))


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert math.isnan(percentile([], 0.99))


def test_the_result_lines_have_the_issues_exact_form() -> None:
    figures = Figures(
        students=1000,
        intake_rps=21.34,
        intake_p99_ms=2104.4,
        round_s=6.93,
        drain_s=88.04,
        lost_mails=0,
        dead_letters=2,
    )
    assert result_lines(figures) == [
        "intake rps at 1000: 21.3",
        "intake p99 ms at 1000: 2104",
        "round s at 1000: 6.9",
        "drain s at 1000: 88.0",
        "lost mails at 1000: 0",
        "dead letters at 1000: 2",
    ]
    pattern = re.compile(
        r"^(intake rps|intake p99 ms|round s|drain s|lost mails|dead letters) at \d+: [0-9.]+$"
    )
    assert all(pattern.match(line) for line in result_lines(figures))


def test_growth_compares_each_phases_time() -> None:
    small = Figures(1000, 20.0, 2000.0, 7.0, 90.0, 0, 0, intake_s=100.0)
    large = Figures(10000, 20.0, 2000.0, 70.0, 900.0, 0, 0, intake_s=1000.0)
    lines = growth_lines(small, large)
    assert lines == [
        "intake s growth 1000->10000 (x10.0 students): 10.00",
        "intake p99 growth 1000->10000 (x10.0 students): 1.00",
        "round s growth 1000->10000 (x10.0 students): 10.00",
        "drain s growth 1000->10000 (x10.0 students): 10.00",
    ]
