"""The KPI charts of the portal's dashboard: Vega-Lite specifications built from the KPIs
(`specs.py`), the vendored Vega, Vega-Lite and Vega-Embed that draw them (`static/`, pinned
npm packages, no CDN) and a partial the portal includes (`templates/kpi_charts.html`).

For the portal: serve STATIC_DIR at a path (e.g. `/static/charts`), add TEMPLATES_DIR to the
Jinja loader, fetch `GET /cohorts/{id}/charts?lang=<reader's language>` from the matching
service and render the partial with `charts` (that JSON) and `charts_static` (the path). It
runs under `script-src 'self'; style-src 'self'` (no eval, no inline script or style).
"""

from pathlib import Path

from shared.charts.specs import dashboard

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
PARTIAL = "kpi_charts.html"

__all__ = ["PARTIAL", "STATIC_DIR", "TEMPLATES_DIR", "dashboard"]
