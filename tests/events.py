"""Events the tests feed to the services directly, with plausible facts the test need not name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.events import CloudEvent, RoundCompleted, make_event


def round_completed(round_id: str, cohort_id: str, round_number: int = 1) -> CloudEvent[Any]:
    """A completed round of one student, one seat and one proposal. The one message it plans,
    the notice to the coordinator, needs no contact or position facts."""
    return make_event(
        RoundCompleted(
            round_id=round_id,
            cohort_id=cohort_id,
            round_number=round_number,
            algorithm_version="v",
            seed=1,
            input_hash="h",
            students=1,
            seats=1,
            proposed=1,
            unmatched=0,
            excluded_pairs=0,
            stable=True,
            completed_at=datetime.now(UTC),
        ),
        source="/tests",
        subject=round_id,
    )
