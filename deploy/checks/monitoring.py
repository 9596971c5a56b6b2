"""deploy/monitoring: the Prometheus alert rules and the Grafana dashboard.

Offline and without promtool: the rule file has the shape Prometheus loads (groups of rules,
each alert with an expression, a severity and a summary, no name twice), every expression and
panel query parses as PromQL (promql-parser, Prometheus' grammar), the dashboard is a Grafana
dashboard with a query on every panel, and every `kitakyushu_*` series either names is one the
services declare (their source), with the suffixes prometheus-client adds.
tests/integration/test_observability.py checks the same against the running services.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

_SERIES = re.compile(r"\bkitakyushu_[a-z_]+\b")
_DECLARED = re.compile(r"""["'](kitakyushu_[a-z_]+)["']""")
# Counter: _total; Histogram: _bucket, _count, _sum.
_SUFFIXES = ("", "_total", "_bucket", "_count", "_sum")
_SEVERITIES = {"critical", "warning", "info"}


def declared_series(root: Path) -> set[str]:
    names = {
        name
        for folder in ("shared", "services")
        for path in (root / folder).rglob("*.py")
        for name in _DECLARED.findall(path.read_text(encoding="utf-8"))
    }
    return {name + suffix for name in names for suffix in _SUFFIXES}


def _promql_problem(expr: str) -> str | None:
    """Why `expr` is not PromQL, or None. Grafana's variables ($service) sit inside label
    matchers' strings, where the parser takes them as text."""
    if not expr.strip():
        return "empty query"
    try:
        promql_parser.parse(expr)
    except ValueError as exc:
        return f"not PromQL ({exc})"
    return None


def check_alerts(path: Path, known: set[str]) -> Iterator[str]:
    document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list) or not groups:
        yield f"{path.name}: no `groups`"
        return
    seen: set[str] = set()
    for group in groups:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record") or "?"
            expr = str(rule.get("expr", ""))
            if name in seen:
                yield f"{path.name}: {name} twice"
            seen.add(name)
            problem = _promql_problem(expr)
            if problem:
                yield f"{path.name}: {name}: {problem}"
            if "alert" in rule:
                if (rule.get("labels") or {}).get("severity") not in _SEVERITIES:
                    yield f"{path.name}: {name}: severity not one of {sorted(_SEVERITIES)}"
                if not (rule.get("annotations") or {}).get("summary"):
                    yield f"{path.name}: {name}: no summary annotation"
            for series in set(_SERIES.findall(expr)) - known:
                yield f"{path.name}: {name}: {series} is not a metric of the services"


def check_dashboard(path: Path, known: set[str]) -> Iterator[str]:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    if not dashboard.get("uid") or not dashboard.get("title"):
        yield f"{path.name}: no uid or title"
    panels = dashboard.get("panels") or []
    if not panels:
        yield f"{path.name}: no panels"
    for panel in panels:
        exprs = [t.get("expr", "") for t in panel.get("targets") or []]
        if not exprs:
            yield f"{path.name}: panel {panel.get('title')!r}: no query"
        for problem in filter(None, map(_promql_problem, exprs)):
            yield f"{path.name}: panel {panel.get('title')!r}: {problem}"
        for series in {s for e in exprs for s in _SERIES.findall(e)} - known:
            yield f"{path.name}: panel {panel.get('title')!r}: {series} is not a metric"


def check(root: Path) -> tuple[list[str], int]:
    """Problems, and how many alert rules there are."""
    known = declared_series(root)
    folder = root / "deploy" / "monitoring"
    problems = [
        *check_alerts(folder / "alerts.yaml", known),
        *check_dashboard(folder / "dashboard.json", known),
    ]
    rules = yaml.safe_load((folder / "alerts.yaml").read_text(encoding="utf-8"))["groups"]
    return problems, sum(len(g.get("rules") or []) for g in rules)
