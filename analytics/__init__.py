"""The reference downstream subscriber: the public event stream -> DuckDB -> the program's KPIs.

It reads only the public topics (never `contacts`, never a service's database), in its own
consumer group, from the beginning; it lands every event once (by event id) in an embedded
DuckDB file and computes the KPIs from those events alone, with the platform's own definitions
(shared/kpis). `make analytics` runs it against `make run`; README, "Analytics", shows how the
same program follows a production cluster.
"""
