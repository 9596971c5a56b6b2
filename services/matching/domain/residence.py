"""Residence-status guidance for an intern from Taiwan (see BRIEF.md; not legal advice).

- paid, part of the curriculum: Designated Activities (特定活動, notice no. 9); needs an
  agreement between the university and the host,
- unpaid, at most 90 days: Temporary Visitor (短期滞在),
- unpaid, over 90 days: Cultural Activities (文化活動).
"""

from __future__ import annotations

from datetime import date

from shared.events.vocabulary import ResidenceStatus

TEMPORARY_VISITOR_MAX_DAYS = 90


def stay_days(start: date, end: date) -> int:
    return (end - start).days + 1


def residence_status(paid: bool, start: date, end: date) -> ResidenceStatus:
    if paid:
        return ResidenceStatus.DESIGNATED_ACTIVITIES
    if stay_days(start, end) <= TEMPORARY_VISITOR_MAX_DAYS:
        return ResidenceStatus.TEMPORARY_VISITOR
    return ResidenceStatus.CULTURAL_ACTIVITIES
