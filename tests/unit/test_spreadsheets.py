"""Report cells are data, never formulas (shared/spreadsheets): the OWASP neutralisation of
CSV injection, typed values left alone, XLSX text always a string, and no module that writes
a CSV or an XLSX file around it."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from shared.spreadsheets import csv_bytes, neutralise, starts_a_formula, xlsx_cell

ROOT = Path(__file__).resolve().parents[2]

# What each leading character can do when a spreadsheet program opens the file.
HOSTILE = [
    '=HYPERLINK("http://evil.example/?x=1","click me")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+2",
    "\r=1+2",
    "=",  # one character: openpyxl leaves it text, a CSV reader may not
    "-",
]
# Decided: the characters NFKC folds into a formula start are treated as one (full-width
# input in Japanese and Chinese, small and superscript forms).
FOLDED = ["＝1+2", "＋81 93 000 0000", "－2", "＠SUM(A1)", "﹦1+2", "﹢1", "⁼1", "₊1"]
SAFE_TEXT = [
    "",
    "林怡君",
    "響灘セミコンダクター株式会社",
    "a=b",
    "Kitakyushu-Taipei",
    "'=already quoted",
    "'",
    "#N/A",
    "−2",  # U+2212 MINUS SIGN: not folded into '-', not a formula start
    " =1+2",  # a leading space: not on OWASP's list
]
TYPED = [0, 3, -3, 0.5, -0.25, 10**15, True, False, date(2027, 7, 1), datetime(2027, 7, 1, 9)]


@pytest.mark.parametrize("text", HOSTILE + FOLDED)
def test_text_that_could_start_a_formula_gets_an_apostrophe(text: str) -> None:
    assert starts_a_formula(text)
    assert neutralise(text) == "'" + text
    # Idempotent: neutralising twice adds no second apostrophe.
    assert neutralise(neutralise(text)) == "'" + text


@pytest.mark.parametrize("text", SAFE_TEXT)
def test_other_text_is_left_as_it_is(text: str) -> None:
    assert not starts_a_formula(text)
    assert neutralise(text) == text


@pytest.mark.parametrize("value", [*TYPED, None])
def test_numbers_dates_booleans_and_none_stay_what_they_are(value: Any) -> None:
    out = neutralise(value)
    assert out == value and type(out) is type(value)


def test_csv_cells_are_neutralised_and_numbers_stay_bare() -> None:
    raw = csv_bytes(
        [
            ["name", "seats", "change", "ratio", "note"],
            [HOSTILE[0], 3, -3, -0.25, None],
            ["-3", 0, -1, 0.5, "＝1+2"],
        ]
    )
    assert raw.startswith("\ufeff".encode()) and raw.endswith(b"\r\n")
    text = raw.decode("utf-8-sig")
    # Negative numbers are written as numbers, no apostrophe, no quotes: Excel reads numbers.
    assert text.splitlines()[1].endswith(",3,-3,-0.25,")
    assert text.splitlines()[2].startswith("'-3,0,-1,0.5,")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [
        ["name", "seats", "change", "ratio", "note"],
        ["'" + HOSTILE[0], "3", "-3", "-0.25", ""],
        ["'-3", "0", "-1", "0.5", "'＝1+2"],
    ]
    # The tab and the carriage return stay inside the (quoted) cell, behind the apostrophe.
    tricky = csv_bytes([HOSTILE[4:6]]).decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(tricky, newline=""))) == [["'\t=1+2", "'\r=1+2"]]


def test_xlsx_text_is_always_a_string_and_typed_values_stay_typed() -> None:
    workbook = Workbook(write_only=True)
    ws = workbook.create_sheet("t")
    text_cells = [xlsx_cell(ws, v) for v in HOSTILE + FOLDED + SAFE_TEXT]
    typed_cells = [xlsx_cell(ws, v) for v in TYPED]
    # openpyxl alone would make '=...' a formula ('f') and '#N/A' an error value ('e').
    assert {c.data_type for c in text_cells} == {"s"}
    assert [c.data_type for c in typed_cells] == ["n"] * 6 + ["b", "b", "d", "d"]
    assert [c.value for c in typed_cells] == TYPED
    ws.append(text_cells)
    ws.append(typed_cells)
    buffer = io.BytesIO()
    workbook.save(buffer)

    book = load_workbook(io.BytesIO(buffer.getvalue()))
    texts, typed = list(book["t"].iter_rows())
    assert [c.data_type for c in texts if c.value is not None] == ["s"] * (len(text_cells) - 1)
    # XML reads a bare carriage return as a line feed (openpyxl does not write it as &#13;).
    expected = [neutralise(v).replace("\r", "\n") or None for v in HOSTILE + FOLDED + SAFE_TEXT]
    assert [c.value for c in texts] == expected
    values = [c.value for c in typed][: len(TYPED)]
    assert values[:6] == [0, 3, -3, 0.5, -0.25, 10**15]
    assert values[6:8] == [True, False]
    # A day reads back as midnight: Excel has date-times only.
    assert values[8:] == [datetime(2027, 7, 1), datetime(2027, 7, 1, 9)]


# A CSV or XLSX file written without shared/spreadsheets would carry formulas again.
_CELL_WRITERS = re.compile(r"csv\.(?:writer|DictWriter)\(|WriteOnlyCell|openpyxl\.cell")
_OPENPYXL = re.compile(r"^\s*(?:from|import) openpyxl\b", re.MULTILINE)


def test_every_spreadsheet_the_platform_writes_goes_through_shared_spreadsheets() -> None:
    sources = [
        path
        for folder in ("services", "shared", "analytics", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
    ]
    assert len(sources) > 50
    own = ROOT / "shared" / "spreadsheets.py"
    writers = [p for p in sources if p != own and _CELL_WRITERS.search(p.read_text())]
    assert writers == []
    bypassing = [
        p.relative_to(ROOT).as_posix()
        for p in sources
        if p != own
        and _OPENPYXL.search(text := p.read_text())
        and "from shared.spreadsheets import" not in text
    ]
    assert bypassing == []
    assert "services/matching/exports.py" in {
        p.relative_to(ROOT).as_posix()
        for p in sources
        if "from shared.spreadsheets import" in p.read_text()
    }
