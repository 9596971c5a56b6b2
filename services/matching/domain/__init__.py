"""Pure rules of the matching service (no I/O): eligibility, preferences, the deferred
acceptance engine, its stability certificate, and residence-status guidance."""
