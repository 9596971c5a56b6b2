"""The cohort report (pure): whose rows a reader gets, the words and times they read, and the
two file formats."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import datetime

from openpyxl import load_workbook

from services.matching.domain.report import TABLES, Reader, present, report_tables
from services.matching.domain.statistics import cohort_records
from services.matching.exports import to_csv, to_xlsx
from shared.events.vocabulary import Language
from shared.kpis import cohort_kpis
from tests.unit.test_matching_statistics import COHORT, documents

PEOPLE = {
    "s1": {"name": "林怡君", "university": "National Taipei University of Technology"},
    "s2": {"name": "陳冠宇", "university": "National Taipei University of Technology"},
    "s3": {"name": "黃詩涵", "university": "National Taiwan University"},
    "s4": {"name": "張家豪", "university": "National Taipei University of Technology"},
}


def tables(reader: Reader) -> list:  # type: ignore[type-arg]
    docs = documents()
    positions = [
        {**p, "company_name_ja": "響灘セミコンダクター株式会社", "title": "検査装置"}
        for p in docs["positions"]
    ]
    for p in positions:
        p.update(start_date="2026-07-01", end_date="2026-08-31")
    return report_tables(
        reader,
        positions=positions,
        applications=docs["applications"],
        rounds=docs["rounds"],
        proposals=docs["proposals"],
        placements=docs["placements"],
        kpis=cohort_kpis(cohort_records(COHORT, **docs)),
    )


def test_the_coordinator_gets_every_row_and_a_university_office_its_own() -> None:
    everyone = {t.key: t for t in tables(Reader(PEOPLE, everyone=True))}
    assert [t for t in TABLES] == list(everyone)
    assert {r["student_id"] for r in everyone["applicants"].rows} == {"s1", "s2", "s3", "s4"}
    assert len(everyone["positions"].rows) == 2  # the stub of an unpublished position is left out

    own = {k: v for k, v in PEOPLE.items() if v["university"].startswith("National Taipei")}
    office = {t.key: t for t in tables(Reader(own, everyone=False))}
    for key in ("applicants", "proposals", "placements"):
        assert "s3" not in {r["student_id"] for r in office[key].rows}, key
    # An erased student (not named by the applications service) stays in the coordinator's
    # report by id, without a name.
    erased = {t.key: t for t in tables(Reader({"s1": PEOPLE["s1"]}, everyone=True))}
    row = next(r for r in erased["applicants"].rows if r["student_id"] == "s2")
    assert row["name"] is None


def test_time_headers_name_the_zone_in_the_readers_words() -> None:
    headers = {
        (language, zone): next(
            h
            for s in present(tables(Reader(PEOPLE, True)), language, zone)
            if s.key == "placements"
            for h in s.headers
            if h.startswith(("確定日時", "確定時間", "Confirmed"))
        )
        for language in Language
        for zone in ("Asia/Tokyo", "Asia/Taipei")
    }
    assert headers[Language.ZH_TW, "Asia/Taipei"] == "確定時間（臺灣時間）"
    assert headers[Language.JA, "Asia/Taipei"] == "確定日時（台湾時間）"
    assert headers[Language.EN, "Asia/Tokyo"] == "Confirmed (Japan time)"
    assert not any("Asia/" in h for h in headers.values())


def test_words_and_times_are_the_readers() -> None:
    sheets = {s.key: s for s in present(tables(Reader(PEOPLE, True)), Language.JA, "Asia/Tokyo")}
    placements = sheets["placements"]
    assert placements.title == "受入"
    assert "確定日時（日本時間）" in placements.headers
    confirmed = placements.rows[0][placements.headers.index("確定日時（日本時間）")]
    assert confirmed == datetime(2027, 3, 2, 15, 0)  # 06:00 UTC + 30 h, in Japan time
    assert placements.rows[0][placements.headers.index("進路")] == "受入企業に就職"
    kpis = sheets["kpis"]
    match_rate = next(r for r in kpis.rows if r[0] == "match_rate")
    assert match_rate[1:] == ["マッチング率", 0.25, "有効な受入確定のある学生 ÷ 応募者数"]
    sector = next(
        r for r in kpis.rows if r[0] == "applications_by_sector.semiconductor.first_choice"
    )
    assert sector[1] == "分野別応募件数・半導体・第1志望"

    taipei = present(tables(Reader(PEOPLE, True)), Language.ZH_TW, "Asia/Taipei")
    assert [s.title for s in taipei] == [
        "申請者",
        "職缺",
        "媒合輪次",
        "媒合提案與回覆",
        "實習",
        "指標",
    ]


def test_csv_has_a_bom_and_crlf_and_xlsx_one_sheet_per_table() -> None:
    sheets = present(tables(Reader(PEOPLE, True)), Language.ZH_TW, "Asia/Taipei")
    raw = to_csv(sheets[0])
    assert raw.startswith(codecs.BOM_UTF8) and b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][2] == "姓名" and {r[2] for r in rows[1:]} == {p["name"] for p in PEOPLE.values()}
    assert "響灘セミコンダクター株式会社 / 検査装置" in {r[10] for r in rows[1:]}

    book = load_workbook(io.BytesIO(to_xlsx(sheets, title="t")), read_only=True)
    assert book.sheetnames == [s.title for s in sheets]
    first = list(book[book.sheetnames[0]].iter_rows(values_only=True))
    assert list(first[0]) == sheets[0].headers and len(first) == 1 + len(sheets[0].rows)
