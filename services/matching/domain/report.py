"""A cohort's report for the coordinator and the university office (pure): its tables, their
columns, and the rows a reader may see, worded in the reader's language and time zone.

The matching service assembles it: rounds, proposals, answers, placements and the KPIs are its
own; positions and applications are its read model of the public events; the applicants'
names and universities come from the applications service, their only holder, asked with the
reader's own token. A university office is answered with its own students only, so its
report has rows about them alone; the coordinator's also keeps the rows of students that were
erased since (pseudonymous ids, no name). The KPIs are the cohort's (aggregates, no personal
data; the same figures the public stream gives).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.events.vocabulary import Language
from shared.kpis import KPI_DEFINITIONS
from shared.kpis.labels import CODES, KPI_DEFINITIONS_LOCAL, KPI_NAMES, word

Doc = dict[str, Any]
Kind = Literal["text", "int", "float", "date", "datetime", "bool", "code"]

TABLES = ("applicants", "positions", "rounds", "proposals", "placements", "kpis")

TABLE_TITLES = {
    "applicants": {"en": "Applicants", "ja": "応募者", "zh-TW": "申請者"},
    "positions": {"en": "Positions", "ja": "募集職種", "zh-TW": "職缺"},
    "rounds": {"en": "Rounds", "ja": "マッチング", "zh-TW": "媒合輪次"},
    "proposals": {"en": "Proposals", "ja": "提案と回答", "zh-TW": "媒合提案與回覆"},
    "placements": {"en": "Placements", "ja": "受入", "zh-TW": "實習"},
    "kpis": {"en": "KPIs", "ja": "指標", "zh-TW": "指標"},
}

HEADERS: dict[str, dict[str, str]] = {
    "application_id": {"en": "Application", "ja": "応募ID", "zh-TW": "申請編號"},
    "student_id": {"en": "Student", "ja": "学生ID", "zh-TW": "學生編號"},
    "name": {"en": "Name", "ja": "氏名", "zh-TW": "姓名"},
    "university": {"en": "University", "ja": "大学", "zh-TW": "學校"},
    "department": {"en": "Department", "ja": "学科", "zh-TW": "系所"},
    "degree_program": {"en": "Degree program", "ja": "課程", "zh-TW": "學制"},
    "graduation_year": {"en": "Graduation year", "ja": "卒業予定年", "zh-TW": "預計畢業年"},
    "jlpt_level": {"en": "JLPT", "ja": "日本語能力試験", "zh-TW": "日檢"},
    "english_level": {"en": "English", "ja": "英語", "zh-TW": "英語程度"},
    "submitted_at": {"en": "Submitted", "ja": "応募日時", "zh-TW": "申請時間"},
    "first_choice": {"en": "First choice", "ja": "第1志望", "zh-TW": "第一志願"},
    "ranked_position_ids": {"en": "Ranked positions", "ja": "志望順位", "zh-TW": "志願序"},
    "status": {"en": "Status", "ja": "状況", "zh-TW": "狀態"},
    "withdrawn_reason": {"en": "Withdrawn because", "ja": "取下げ理由", "zh-TW": "撤回原因"},
    "position_id": {"en": "Position", "ja": "職種ID", "zh-TW": "職缺編號"},
    "company_id": {"en": "Company", "ja": "企業ID", "zh-TW": "企業編號"},
    "company_name_ja": {"en": "Company (Japanese)", "ja": "企業名", "zh-TW": "企業名稱（日文）"},
    "company_name_en": {"en": "Company", "ja": "企業名（英語）", "zh-TW": "企業名稱（英文）"},
    "sector": {"en": "Sector", "ja": "分野", "zh-TW": "產業"},
    "track": {"en": "Kind of internship", "ja": "実習内容", "zh-TW": "實習類型"},
    "title": {"en": "Title", "ja": "職種名", "zh-TW": "職缺名稱"},
    "capacity": {"en": "Seats", "ja": "受入人数", "zh-TW": "名額"},
    "paid": {"en": "Paid", "ja": "有給", "zh-TW": "有薪"},
    "start_date": {"en": "Starts", "ja": "開始日", "zh-TW": "開始日期"},
    "end_date": {"en": "Ends", "ja": "終了日", "zh-TW": "結束日期"},
    "location": {"en": "Location", "ja": "実施場所", "zh-TW": "地點"},
    "min_jlpt": {"en": "JLPT required", "ja": "必要な日本語能力", "zh-TW": "日檢要求"},
    "state": {"en": "State", "ja": "状態", "zh-TW": "狀態"},
    "placements": {"en": "Placements", "ja": "受入確定数", "zh-TW": "實習確定人數"},
    "seats_left_empty": {"en": "Seats left empty", "ja": "未充足の枠", "zh-TW": "未補滿名額"},
    "round_id": {"en": "Round", "ja": "マッチングID", "zh-TW": "媒合輪次編號"},
    "number": {"en": "Number", "ja": "回", "zh-TW": "輪次"},
    "round_number": {"en": "Round", "ja": "回", "zh-TW": "輪次"},
    "completed_at": {"en": "Run", "ja": "実施日時", "zh-TW": "執行時間"},
    "respond_by": {"en": "Answer by", "ja": "回答期限", "zh-TW": "回覆期限"},
    "students": {"en": "Students", "ja": "対象学生数", "zh-TW": "參與學生數"},
    "seats": {"en": "Free seats", "ja": "空き枠", "zh-TW": "可用名額"},
    "proposed": {"en": "Proposals", "ja": "提案数", "zh-TW": "提案數"},
    "unmatched": {"en": "Left unmatched", "ja": "不成立", "zh-TW": "未媒合"},
    "excluded_pairs": {"en": "Pairs excluded", "ja": "対象外の組合せ", "zh-TW": "排除的組合"},
    "stable": {"en": "Stable", "ja": "安定性確認", "zh-TW": "穩定性驗證"},
    "seed": {"en": "Seed", "ja": "シード値", "zh-TW": "亂數種子"},
    "algorithm_version": {"en": "Algorithm", "ja": "アルゴリズム", "zh-TW": "演算法"},
    "input_hash": {"en": "Input hash", "ja": "入力ハッシュ", "zh-TW": "輸入雜湊"},
    "proposal_id": {"en": "Proposal", "ja": "提案ID", "zh-TW": "提案編號"},
    "student_rank": {"en": "Student's rank", "ja": "学生の志望順位", "zh-TW": "學生志願序"},
    "residence_status": {
        "en": "Residence status (guidance)",
        "ja": "在留資格（目安）",
        "zh-TW": "在留資格（參考）",
    },
    "proposed_at": {"en": "Proposed", "ja": "提案日時", "zh-TW": "提案時間"},
    "student_answer": {"en": "Student's answer", "ja": "学生の回答", "zh-TW": "學生回覆"},
    "student_answered_at": {
        "en": "Student answered",
        "ja": "学生の回答日時",
        "zh-TW": "學生回覆時間",
    },
    "company_answer": {"en": "Company's answer", "ja": "企業の回答", "zh-TW": "企業回覆"},
    "company_answered_at": {
        "en": "Company answered",
        "ja": "企業の回答日時",
        "zh-TW": "企業回覆時間",
    },
    "ended_at": {"en": "Ended", "ja": "終了日時", "zh-TW": "結束時間"},
    "cancel_reason": {"en": "Cancelled because", "ja": "取消理由", "zh-TW": "取消原因"},
    "placement_id": {"en": "Placement", "ja": "受入ID", "zh-TW": "實習編號"},
    "confirmed_at": {"en": "Confirmed", "ja": "確定日時", "zh-TW": "確定時間"},
    "note_code": {"en": "Case reference", "ja": "案件番号", "zh-TW": "案件編號"},
    "cancelled_at": {"en": "Cancelled", "ja": "取消日時", "zh-TW": "取消時間"},
    "completed_on": {"en": "Completed on", "ja": "修了日", "zh-TW": "完成日期"},
    "outcome": {"en": "Outcome", "ja": "進路", "zh-TW": "實習後動向"},
    "outcome_recorded_at": {
        "en": "Outcome recorded",
        "ja": "進路の記録日時",
        "zh-TW": "動向記錄時間",
    },
    "key": {"en": "Key", "ja": "キー", "zh-TW": "代碼"},
    "metric": {"en": "Figure", "ja": "指標", "zh-TW": "指標"},
    "value": {"en": "Value", "ja": "値", "zh-TW": "數值"},
    "definition": {"en": "Definition", "ja": "定義", "zh-TW": "定義"},
}


@dataclass(frozen=True)
class Column:
    key: str
    kind: Kind = "text"


def _columns(spec: str) -> list[Column]:
    """'a b:int c:datetime' -> columns (text unless a kind is given)."""
    out = []
    for part in spec.split():
        key, _, kind = part.partition(":")
        out.append(Column(key, kind or "text"))  # type: ignore[arg-type]
    return out


COLUMNS: dict[str, list[Column]] = {
    "applicants": _columns(
        "application_id student_id name university department degree_program "
        "graduation_year:int jlpt_level english_level submitted_at:datetime first_choice "
        "ranked_position_ids status:code withdrawn_reason:code"
    ),
    "positions": _columns(
        "position_id company_id company_name_ja company_name_en sector:code track:code title "
        "capacity:int paid:bool start_date:date end_date:date location min_jlpt state:code "
        "placements:int seats_left_empty:int"
    ),
    "rounds": _columns(
        "round_id number:int completed_at:datetime respond_by:datetime students:int seats:int "
        "proposed:int unmatched:int excluded_pairs:int stable:bool seed:int algorithm_version "
        "input_hash"
    ),
    "proposals": _columns(
        "proposal_id round_number:int student_id name application_id position_id "
        "company_name_ja title sector:code student_rank:int residence_status:code "
        "proposed_at:datetime respond_by:datetime student_answer:code "
        "student_answered_at:datetime company_answer:code company_answered_at:datetime "
        "status:code ended_at:datetime cancel_reason:code"
    ),
    "placements": _columns(
        "placement_id proposal_id student_id name university position_id company_name_ja title "
        "sector:code start_date:date end_date:date residence_status:code confirmed_at:datetime "
        "status:code cancel_reason:code note_code cancelled_at:datetime completed_on:date "
        "outcome:code outcome_recorded_at:datetime"
    ),
    "kpis": _columns("key metric value definition"),
}


@dataclass
class Table:
    key: str
    columns: list[Column]
    rows: list[Doc] = field(default_factory=list)


@dataclass(frozen=True)
class Reader:
    """Whose report it is: the students the applications service names for this reader
    (id -> name, university, applications), and whether the reader may also see rows of
    students it does not name (the coordinator: erased students, by id only)."""

    students: dict[str, Doc]
    everyone: bool

    def sees(self, student_id: str) -> bool:
        return self.everyone or student_id in self.students

    def person(self, student_id: str) -> Doc:
        return self.students.get(student_id, {})


def _first_choice(application: Doc, positions: dict[str, Doc]) -> str | None:
    ranked = application.get("ranked_position_ids") or []
    first = positions.get(ranked[0]) if ranked else None
    if first is None:
        return None
    return f"{first.get('company_name_ja', '')} / {first.get('title', '')}"


def _application_status(application: Doc, reader: Reader) -> str | None:
    """The applications service's one status for the application (it alone derives it);
    matching's own `active`/`withdrawn` where that service does not name the student."""
    for entry in reader.person(application["student_id"]).get("applications", []):
        if entry["id"] == application["_id"]:
            return str(entry["state"])
    return "withdrawn" if application.get("state") == "withdrawn" else None


def _ended_at(proposal: Doc) -> Any:
    return proposal.get("cancelled_at") or proposal.get("expired_at")


def report_tables(
    reader: Reader,
    *,
    positions: list[Doc],
    applications: list[Doc],
    rounds: list[Doc],
    proposals: list[Doc],
    placements: list[Doc],
    kpis: Doc,
) -> list[Table]:
    """The report's tables, in TABLES order, holding only rows the reader may see."""
    by_position = {p["_id"]: p for p in positions if "capacity" in p}
    standing = Counter(
        p["position_id"] for p in placements if p.get("status", "confirmed") != "cancelled"
    )
    round_number = {r["_id"]: r["number"] for r in rounds}

    applicants = Table("applicants", COLUMNS["applicants"])
    for a in sorted(applications, key=lambda a: (str(a.get("submitted_at")), a["_id"])):
        if not a.get("ranked_position_ids") or not reader.sees(a["student_id"]):
            continue
        person = reader.person(a["student_id"])
        applicants.rows.append(
            {
                "application_id": a["_id"],
                "student_id": a["student_id"],
                **{
                    k: person.get(k) for k in ("name", "university", "degree_program", "jlpt_level")
                },
                "department": person.get("department", a.get("department")),
                "graduation_year": person.get("graduation_year", a.get("graduation_year")),
                "english_level": person.get("english_level", a.get("english_level")),
                "submitted_at": _moment(a.get("submitted_at")),
                "first_choice": _first_choice(a, by_position),
                "ranked_position_ids": " > ".join(a["ranked_position_ids"]),
                "status": _application_status(a, reader),
                "withdrawn_reason": a.get("withdrawn_reason")
                if a.get("state") == "withdrawn"
                else None,
            }
        )

    position_table = Table("positions", COLUMNS["positions"])
    for pid, p in sorted(by_position.items()):
        position_table.rows.append(
            {
                **{c.key: p.get(c.key) for c in COLUMNS["positions"]},
                "position_id": pid,
                "start_date": _day(p.get("start_date")),
                "end_date": _day(p.get("end_date")),
                "placements": standing[pid],
                "seats_left_empty": max(0, p["capacity"] - standing[pid]),
            }
        )

    round_table = Table("rounds", COLUMNS["rounds"])
    for r in sorted(rounds, key=lambda r: r["number"]):
        stats = r.get("statistics", {})
        round_table.rows.append(
            {
                "round_id": r["_id"],
                "number": r["number"],
                "completed_at": r.get("completed_at"),
                "respond_by": r.get("respond_by"),
                **{k: stats.get(k) for k in ("students", "seats", "proposed", "unmatched")},
                "excluded_pairs": stats.get("excluded_pairs"),
                "stable": r.get("certificate", {}).get("stable"),
                "seed": r.get("seed"),
                "algorithm_version": r.get("algorithm_version"),
                "input_hash": r.get("input_hash"),
            }
        )

    proposal_table = Table("proposals", COLUMNS["proposals"])
    for p in sorted(proposals, key=lambda p: (p["proposed_at"], p["_id"])):
        if not reader.sees(p["student_id"]):
            continue
        position = by_position.get(p["position_id"], {})
        proposal_table.rows.append(
            {
                **{c.key: p.get(c.key) for c in COLUMNS["proposals"]},
                "proposal_id": p["_id"],
                "round_number": round_number.get(p["round_id"]),
                "name": reader.person(p["student_id"]).get("name"),
                "company_name_ja": position.get("company_name_ja"),
                "title": position.get("title"),
                "ended_at": _ended_at(p),
            }
        )

    placement_table = Table("placements", COLUMNS["placements"])
    for p in sorted(placements, key=lambda p: (p["confirmed_at"], p["_id"])):
        if not reader.sees(p["student_id"]):
            continue
        position = by_position.get(p["position_id"], {})
        person = reader.person(p["student_id"])
        placement_table.rows.append(
            {
                **{c.key: p.get(c.key) for c in COLUMNS["placements"]},
                "placement_id": p["_id"],
                "name": person.get("name"),
                "university": person.get("university"),
                "company_name_ja": position.get("company_name_ja"),
                "title": position.get("title"),
                "start_date": _day(p.get("start_date")),
                "end_date": _day(p.get("end_date")),
                "status": p.get("status", "confirmed"),
                "completed_on": _day(p.get("completed_on")),
            }
        )

    kpi_table = Table("kpis", COLUMNS["kpis"], rows=kpi_rows(kpis))
    return [applicants, position_table, round_table, proposal_table, placement_table, kpi_table]


def _moment(value: Any) -> datetime | None:
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value if isinstance(value, datetime) else None


def _day(value: Any) -> date | None:
    if isinstance(value, str):
        return date.fromisoformat(value)
    return value if isinstance(value, date) else None


def kpi_rows(kpis: Doc) -> list[Doc]:
    """One row per figure: nested figures (by sector, median/p90) get a row per part, keyed
    `applications_by_sector.semiconductor.applications`."""
    rows = []

    def walk(path: list[str], value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk([*path, str(key)], inner)
            return
        rows.append({"key": ".".join(path), "parts": path, "value": value})

    for key, value in kpis.items():
        if key not in ("cohort_id", "acceptance_rate_basis"):
            walk([key], value)
    return rows


# Presentation: labels, the reader's language and time zone ---------------------------------


@dataclass
class Sheet:
    """A table as a reader sees it: a title, column headers, and cells (text, numbers, dates;
    moments in the reader's zone, without it: the header names the zone)."""

    key: str
    title: str
    headers: list[str]
    kinds: list[Kind]
    rows: list[list[Any]]


def kpi_label(parts: list[str], language: Language) -> str:
    head = word(KPI_NAMES, parts[0], language)
    tail = [word(CODES, p, language) for p in parts[1:]]
    separator = " – " if language is Language.EN else "・"
    return separator.join([head, *tail])


def kpi_definition(key: str, language: Language) -> str:
    if language is Language.EN:
        return KPI_DEFINITIONS.get(key, "")
    return word(KPI_DEFINITIONS_LOCAL, key, language) if key in KPI_DEFINITIONS_LOCAL else ""


def _cell(column: Column, value: Any, language: Language, zone: ZoneInfo) -> Any:
    if value is None or value == "":
        return None
    if column.kind == "datetime":
        moment = _moment(value)
        return None if moment is None else moment.astimezone(zone).replace(tzinfo=None)
    if column.kind == "date":
        return _day(value)
    if column.kind in ("code", "bool"):
        return word(CODES, value, language)
    return value


# The readers' zones as their languages name them in a header ("確定日時（日本時間）").
ZONE_NAMES = {
    "Asia/Tokyo": {"en": "Japan time", "ja": "日本時間", "zh-TW": "日本時間"},
    "Asia/Taipei": {"en": "Taiwan time", "ja": "台湾時間", "zh-TW": "臺灣時間"},
}


def zone_header(label: str, zone_name: str, language: Language) -> str:
    """A time column's header with the zone its times are in, in the reader's words."""
    zone = ZONE_NAMES.get(zone_name, {}).get(language.value, zone_name)
    return f"{label} ({zone})" if language is Language.EN else f"{label}（{zone}）"


def present(tables: list[Table], language: Language, zone_name: str) -> list[Sheet]:
    zone = ZoneInfo(zone_name)
    sheets = []
    for table in tables:
        headers = []
        for column in table.columns:
            label = HEADERS[column.key][language.value]
            kind = column.kind
            headers.append(zone_header(label, zone_name, language) if kind == "datetime" else label)
        rows = []
        for row in table.rows:
            if table.key == "kpis":
                parts = row["parts"]
                value = row["value"]
                rows.append(
                    [
                        row["key"],
                        kpi_label(parts, language),
                        value if not isinstance(value, str) else word(CODES, value, language),
                        kpi_definition(parts[0], language),
                    ]
                )
                continue
            rows.append([_cell(c, row.get(c.key), language, zone) for c in table.columns])
        sheets.append(
            Sheet(
                key=table.key,
                title=TABLE_TITLES[table.key][language.value],
                headers=headers,
                kinds=[c.kind for c in table.columns],
                rows=rows,
            )
        )
    return sheets
