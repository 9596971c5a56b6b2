"""The report's files: CSV (one table per file) and XLSX (one sheet per table).

Every cell goes through shared/spreadsheets: text that a spreadsheet program would read as a
formula (a student or company named `=HYPERLINK(...)`) is written as text behind an apostrophe.
CSV is UTF-8 with a byte order mark (Excel in Japan and Taiwan reads a CSV without one in the
local legacy code page, Shift_JIS or Big5, and garbles every name) and CRLF line ends. XLSX is
written by openpyxl in write-only mode (rows are streamed, not held as cell objects), with typed
cells: numbers are numbers, days and moments are Excel dates, so that sorting and filtering in
Excel work.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from services.matching.domain.report import Sheet
from shared.spreadsheets import csv_bytes, xlsx_cell

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_FORMATS = {"date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm"}
# Column widths in characters, by what a column holds (wide enough for Japanese text too).
_WIDTHS = {"date": 12, "datetime": 17, "int": 10, "bool": 8, "code": 16, "float": 10}


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return value


def to_csv(sheet: Sheet) -> bytes:
    return csv_bytes([sheet.headers, *([_csv_value(v) for v in row] for row in sheet.rows)])


def _sheet_title(title: str) -> str:
    # Excel: at most 31 characters, none of []:*?/\
    return "".join(c for c in title if c not in "[]:*?/\\")[:31]


def to_xlsx(sheets: list[Sheet], *, title: str) -> bytes:
    workbook = Workbook(write_only=True)
    workbook.properties.title = title
    bold = Font(bold=True)
    for sheet in sheets:
        ws = workbook.create_sheet(_sheet_title(sheet.title))
        for index, (header, kind) in enumerate(zip(sheet.headers, sheet.kinds, strict=True)):
            width = max(_WIDTHS.get(kind, 24), min(len(header) * 2, 40))
            ws.column_dimensions[get_column_letter(index + 1)].width = width
        ws.freeze_panes = "A2"
        header_cells = []
        for header in sheet.headers:
            cell = xlsx_cell(ws, header)
            cell.font = bold
            header_cells.append(cell)
        ws.append(header_cells)
        for row in sheet.rows:
            cells = []
            for value, kind in zip(row, sheet.kinds, strict=True):
                cell = xlsx_cell(ws, value)
                if kind in _FORMATS and value is not None:
                    cell.number_format = _FORMATS[kind]
                cells.append(cell)
            ws.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
