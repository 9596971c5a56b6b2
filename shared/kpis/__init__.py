"""The program's KPIs, defined once (README, "KPIs") and computed by one pure function over a
neutral record shape, so that every place that reports a figure reports the same figure.

Why here, in `shared/`: the KPIs are part of the program's public contract, like the event
schemas beside them. The matching service computes them from its documents
(`/cohorts/{id}/statistics`, the reports), a downstream subscriber from the public event
stream alone (`analytics/`); both build the same records (`records.py`) and call the same
`cohort_kpis`. The only code that differs is how each side builds the records, and a test
runs both on one scenario and compares the results.
"""

from shared.kpis.definitions import (
    KPI_DEFINITIONS,
    TREND_FIELDS,
    cohort_kpis,
    hours_to_placement,
    percentile,
    trend,
)
from shared.kpis.from_events import records_from_events
from shared.kpis.records import (
    ApplicationRecord,
    CohortRecord,
    CohortRecords,
    PlacementRecord,
    PlacementState,
    PositionRecord,
    ProposalRecord,
    ProposalState,
    RoundRecord,
)

__all__ = [
    "KPI_DEFINITIONS",
    "TREND_FIELDS",
    "ApplicationRecord",
    "CohortRecord",
    "CohortRecords",
    "PlacementRecord",
    "PlacementState",
    "PositionRecord",
    "ProposalRecord",
    "ProposalState",
    "RoundRecord",
    "cohort_kpis",
    "hours_to_placement",
    "percentile",
    "records_from_events",
    "trend",
]
