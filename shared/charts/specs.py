"""Vega-Lite specifications of the dashboard's KPI charts (pure: KPIs in, JSON out).

Three charts, each with its figures inline (no data URL to fetch) and a plain table of the same
figures for readers who do not see the chart: the funnel from application to employment in
Kitakyushu, the split by sector (applications, seats, placements), and the time from
application to placement (a histogram with the median and the 90th percentile). Words are in
the reader's language; numbers come from `shared.kpis`, so the charts show the very figures of
the KPI table and the reports.
"""

from __future__ import annotations

from typing import Any

from shared.events.vocabulary import LOCAL_EMPLOYMENT, Language
from shared.kpis.definitions import percentile
from shared.kpis.labels import CODES, word

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
# The program's colours: readable on white, distinguishable in grey and by colour-blind readers
# (Okabe-Ito).
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9"]
FONT = "Noto Sans CJK JP, Noto Sans JP, Hiragino Sans, Microsoft JhengHei, sans-serif"
# Counts of people: whole numbers on the axis.
COUNT_AXIS = {"format": "d", "tickMinStep": 1}


def _l(en: str, ja: str, zh: str) -> dict[str, str]:
    return {"en": en, "ja": ja, "zh-TW": zh}


WORDS = {
    "funnel": _l("From application to employment", "応募から就職まで", "從申請到就業"),
    "funnel_description": _l(
        "Students at each step, from application to a job in Kitakyushu.",
        "各段階の学生数（応募から北九州市内での就職まで）。",
        "各階段的學生人數（從申請到在北九州就業）。",
    ),
    "applicants": _l("Applied", "応募", "申請"),
    "proposed": _l("Received a proposal", "提案を受けた", "獲得媒合提案"),
    "placed": _l("Placed", "受入確定", "實習確定"),
    "completed": _l("Completed the internship", "インターンシップ修了", "完成實習"),
    "employed": _l("Hired in Kitakyushu", "北九州市内で就職", "在北九州就業"),
    "students": _l("Students", "学生数", "學生人數"),
    "step": _l("Step", "段階", "階段"),
    "sectors": _l("By sector", "分野別", "各產業"),
    "sectors_description": _l(
        "Applications with a first choice in each sector, seats offered and placements.",
        "分野ごとの第1志望の応募件数・受入枠・受入確定数。",
        "各產業的第一志願申請件數、實習名額與實習確定人數。",
    ),
    "sector": _l("Sector", "分野", "產業"),
    "measure": _l("Figure", "項目", "項目"),
    "count": _l("Number", "件数", "數量"),
    "first_choices": _l("First choices", "第1志望の応募", "第一志願申請"),
    "seats": _l("Seats", "受入枠", "實習名額"),
    "placements": _l("Placements", "受入確定", "實習確定"),
    "time": _l("Time to placement", "受入確定までの期間", "至實習確定所需時間"),
    "time_description": _l(
        "Days from application to confirmed placement, with the median and the 90th percentile.",
        "応募から受入確定までの日数（中央値と90パーセンタイルを表示）。",
        "自申請至實習確定的天數（標示中位數與第90百分位數）。",
    ),
    "days": _l(
        "Days from application to placement", "応募から受入確定までの日数", "申請至實習確定天數"
    ),
    "placements_count": _l("Placements", "受入確定数", "實習確定人數"),
    "median": _l("median", "中央値", "中位數"),
    "p90": _l("90th percentile", "90パーセンタイル", "第90百分位數"),
    "mark": _l("Mark", "目安", "標示"),
    "figures": _l("The figures", "数値", "數據"),
}


def _w(key: str, language: Language) -> str:
    return WORDS[key][language.value]


def _base(description: str) -> dict[str, Any]:
    # The title is the partial's <figcaption>, not drawn twice.
    return {
        "$schema": SCHEMA,
        "description": description,
        "width": "container",
        "autosize": {"type": "fit-x", "contains": "padding"},
        "config": {
            "font": FONT,
            "view": {"stroke": None},
            "axis": {"labelFontSize": 12, "titleFontSize": 12},
            "legend": {"labelFontSize": 12, "titleFontSize": 12},
        },
    }


def funnel(kpis: dict[str, Any], language: Language) -> dict[str, Any]:
    employed = sum(kpis["outcomes"].get(o.value, 0) for o in LOCAL_EMPLOYMENT)
    steps = [
        ("applicants", kpis["applicants"]),
        ("proposed", kpis["students_proposed"]),
        ("placed", kpis["placements"]),
        ("completed", kpis["completed"]),
        ("employed", employed),
    ]
    values = [
        {"order": i, "step": _w(key, language), "students": n} for i, (key, n) in enumerate(steps)
    ]
    spec = _base(_w("funnel_description", language))
    y = {
        "field": "step",
        "type": "nominal",
        "sort": None,  # the funnel's own order (the data's)
        "title": None,
        "axis": {"labelLimit": 220},
    }
    x = {
        "field": "students",
        "type": "quantitative",
        "title": _w("students", language),
        "axis": COUNT_AXIS,
    }
    spec.update(
        {
            "height": {"step": 34},
            "data": {"values": values},
            "encoding": {"y": y},
            "layer": [
                {"mark": {"type": "bar", "color": COLOURS[0]}, "encoding": {"x": x}},
                {
                    "mark": {"type": "text", "align": "left", "dx": 4, "fontSize": 12},
                    "encoding": {"x": x, "text": {"field": "students", "type": "quantitative"}},
                },
            ],
        }
    )
    table = {
        "columns": [_w("step", language), _w("students", language)],
        "rows": [[v["step"], v["students"]] for v in values],
    }
    return {"id": "funnel", **_texts(_w("funnel", language), spec), "spec": spec, "table": table}


def sectors(kpis: dict[str, Any], language: Language) -> dict[str, Any]:
    names = sorted(
        set(kpis["applications_by_sector"])
        | set(kpis["seats_by_sector"])
        | set(kpis["placements_by_sector"])
    )
    measures = [
        (
            "first_choices",
            lambda s: kpis["applications_by_sector"].get(s, {}).get("first_choice", 0),
        ),
        ("seats", lambda s: kpis["seats_by_sector"].get(s, 0)),
        ("placements", lambda s: kpis["placements_by_sector"].get(s, 0)),
    ]
    values = [
        {
            "sector": word(CODES, sector, language),
            "measure": _w(key, language),
            "order": i,
            "count": value(sector),
        }
        for sector in names
        for i, (key, value) in enumerate(measures)
    ]
    spec = _base(_w("sectors_description", language))
    measure_order = [_w(key, language) for key, _ in measures]
    spec.update(
        {
            "height": 240,
            "data": {"values": values},
            "mark": {"type": "bar"},
            "encoding": {
                "x": {
                    "field": "sector",
                    "type": "nominal",
                    "title": None,
                    "axis": {"labelAngle": 0},
                },
                "xOffset": {"field": "measure", "sort": measure_order},
                "y": {
                    "field": "count",
                    "type": "quantitative",
                    "title": _w("count", language),
                    "axis": COUNT_AXIS,
                },
                "color": {
                    "field": "measure",
                    "type": "nominal",
                    "sort": measure_order,
                    "title": _w("measure", language),
                    "scale": {"range": COLOURS[:3]},
                    "legend": {"orient": "bottom"},
                },
            },
        }
    )
    table = {
        "columns": [_w("sector", language), *measure_order],
        "rows": [
            [word(CODES, sector, language), *(value(sector) for _, value in measures)]
            for sector in names
        ],
    }
    return {"id": "sectors", **_texts(_w("sectors", language), spec), "spec": spec, "table": table}


# The unit the time chart counts in: days for a real program, hours or minutes when everything
# happened within a day or two (a rehearsal, a test run), so that the bars do not all sit at 0.
UNITS = {
    "days": (
        24.0,
        _l(
            "Days from application to placement", "応募から受入確定までの日数", "申請至實習確定天數"
        ),
    ),
    "hours": (
        1.0,
        _l(
            "Hours from application to placement",
            "応募から受入確定までの時間",
            "申請至實習確定時數",
        ),
    ),
    "minutes": (
        1 / 60,
        _l(
            "Minutes from application to placement",
            "応募から受入確定までの分数",
            "申請至實習確定分鐘數",
        ),
    ),
}


def _unit(hours: list[float]) -> str:
    longest = max(hours, default=0.0)
    if longest >= 48:
        return "days"
    return "hours" if longest >= 2 else "minutes"


def time_to_placement(
    kpis: dict[str, Any], hours: list[float], language: Language
) -> dict[str, Any]:
    """A histogram of the time from application to placement; the median and the 90th
    percentile (the KPI's own definition) are drawn as rules."""
    unit = _unit(hours)
    per_unit, unit_title = UNITS[unit]
    values = [round(h / per_unit, 2) for h in hours]
    mark_order = [_w("median", language), _w("p90", language)]
    # The KPI's own percentiles, on the unrounded hours (the KPI rounds to 0.01 h).
    marks = [
        {"mark": _w(key, language), "value": round(value / per_unit, 2)}
        for key, q in (("median", 50), ("p90", 90))
        if (value := percentile(hours, q)) is not None
    ]
    spec = _base(_w("time_description", language))
    x_title = unit_title[language.value]
    spec.update(
        {
            "height": 220,
            "layer": [
                {
                    "data": {"values": [{"value": v} for v in values]},
                    "mark": {"type": "bar", "color": COLOURS[0]},
                    "encoding": {
                        "x": {
                            "field": "value",
                            "type": "quantitative",
                            "bin": {"maxbins": 12},
                            "title": x_title,
                        },
                        "y": {
                            "aggregate": "count",
                            "type": "quantitative",
                            "title": _w("placements_count", language),
                            "axis": COUNT_AXIS,
                        },
                    },
                },
                {
                    "data": {"values": marks},
                    "mark": {"type": "rule", "strokeWidth": 2, "strokeDash": [6, 3]},
                    "encoding": {
                        "x": {"field": "value", "type": "quantitative"},
                        "color": {
                            "field": "mark",
                            "type": "nominal",
                            "sort": mark_order,
                            "title": _w("mark", language),
                            "scale": {"domain": mark_order, "range": COLOURS[1:3]},
                            "legend": {"orient": "bottom"},
                        },
                    },
                },
            ],
        }
    )
    table = {
        "columns": [_w("mark", language), x_title],
        "rows": [[m["mark"], m["value"]] for m in marks]
        + [[_w("placements_count", language), len(values)]],
    }
    texts = _texts(_w("time", language), spec)
    return {"id": "time_to_placement", **texts, "unit": unit, "spec": spec, "table": table}


def _texts(title: str, spec: dict[str, Any]) -> dict[str, str]:
    return {"title": title, "description": spec["description"]}


def dashboard(
    kpis: dict[str, Any], placement_hours: list[float], language: Language
) -> dict[str, Any]:
    """The three charts of a cohort, as GET /cohorts/{id}/charts serves them and the
    `kpi_charts.html` partial draws them."""
    return {
        "cohort_id": kpis["cohort_id"],
        "language": language.value,
        "figures_label": _w("figures", language),
        "charts": [
            funnel(kpis, language),
            sectors(kpis, language),
            time_to_placement(kpis, placement_hours, language),
        ],
    }
