"""How facts are worded in messages (pure): dates, deadlines in the reader's own time zone,
sectors, residence-status guidance, company names, and the link to where the reader acts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from shared.events.vocabulary import Language

FALLBACK = Language.EN

# Where each kind of party reads their deadlines unless their contact says otherwise; stored
# per party (ContactRecord.time_zone), never guessed from the language.
DEFAULT_TIME_ZONE = {"student": "Asia/Taipei", "company": "Asia/Tokyo", "coordinator": "Asia/Tokyo"}

# The program's two zones by name; any other zone is shown by its IANA name and UTC offset.
ZONE_LABELS = {
    "Asia/Taipei": {"zh-TW": "臺灣時間", "ja": "台湾時間", "en": "Taiwan time"},
    "Asia/Tokyo": {"zh-TW": "日本時間", "ja": "日本時間", "en": "Japan time"},
}

SECTORS = {
    "semiconductor": {"en": "semiconductors", "ja": "半導体", "zh-TW": "半導體"},
    "automotive": {"en": "automotive", "ja": "自動車", "zh-TW": "汽車"},
    "robotics_ai": {"en": "robotics / AI", "ja": "ロボット・AI", "zh-TW": "機器人與人工智慧"},
    "other": {"en": "other industries", "ja": "その他の産業", "zh-TW": "其他產業"},
}

# Worded to follow a label such as 在留資格の目安： / 在留資格（參考）： / Residence status
# (guidance):, so the term is not repeated.
RESIDENCE = {
    "designated_activities": {
        "en": "Designated Activities (特定活動, notice no. 9): a paid internship that is part "
        "of the curriculum. Taipei Tech and the host company need an internship agreement.",
        "ja": "「特定活動」（告示9号）：教育課程の一部として行う有償のインターンシップです。"
        "国立台北科技大学と受入企業との間でインターンシップ協定の締結が必要です。",
        "zh-TW": "「特定活動」（告示第9號）：屬於學校課程一部分的有薪實習，需由國立臺北科技大學"
        "與實習企業簽訂實習協議。",
    },
    "temporary_visitor": {
        "en": "Temporary Visitor (短期滞在): an unpaid internship of at most 90 days.",
        "ja": "「短期滞在」：90日以内の無償のインターンシップです。",
        "zh-TW": "「短期滯在」：90天以內的無薪實習。",
    },
    "cultural_activities": {
        "en": "Cultural Activities (文化活動): an unpaid internship of more than 90 days.",
        "ja": "「文化活動」：90日を超える無償のインターンシップです。",
        "zh-TW": "「文化活動」：超過90天的無薪實習。",
    },
}

RESIDENCE_NOTE = {
    "en": "This is guidance, not a decision: please confirm with the Immigration Services "
    "Agency of Japan before applying for the status.",
    "ja": "これは目安であり、最終的な判断ではございません。申請の前に出入国在留管理庁へご確認"
    "くださいますようお願いいたします。",
    "zh-TW": "以上僅供參考，並非最終判定；申請前請向日本出入國在留管理廳確認。",
}

# Where each message sends its reader (the portal's URL scheme; see README).
ACTION_PATHS = {
    "application_submitted.student": "/student/application",
    "application_withdrawn.student": "/student",
    "not_matched.student": "/student",
    "match_proposed.student": "/student/proposals/{proposal_id}",
    "match_proposed.company": "/company/proposals/{proposal_id}",
    "answer_reminder.student": "/student/proposals/{proposal_id}",
    "answer_reminder.company": "/company/proposals/{proposal_id}",
    "match_accepted.student": "/student/proposals/{proposal_id}",
    "match_accepted.company": "/company/proposals/{proposal_id}",
    "match_declined.student": "/student",
    "match_declined.company": "/company/positions/{position_id}",
    "match_expired.student": "/student",
    "match_expired.company": "/company/positions/{position_id}",
    "match_cancelled.student": "/student",
    "match_cancelled.company": "/company/positions/{position_id}",
    "placement_confirmed.student": "/student",
    "placement_confirmed.company": "/company/placements",
    "placement_confirmed.coordinator": "/coordinator/cohorts/{cohort_id}",
    "placement_cancelled.student": "/student",
    "placement_cancelled.company": "/company/placements",
    "placement_cancelled.coordinator": "/coordinator/cohorts/{cohort_id}",
    "internship_completed.student": "/student",
    "internship_completed.company": "/company/placements",
    "round_completed.coordinator": "/coordinator/rounds/{round_id}",
    "delivery_failures.coordinator": "/coordinator/deliveries",
    # A registration is confirmed before the company may sign in: the call it answered.
    "company_pending.company": "/call",
    "company_approved.company": "/company/positions",
    "company_rejected.company": "/company",
    "company_suspended.company": "/company",
}


def language_of(preferred: str | None) -> Language:
    try:
        return Language(preferred) if preferred else FALLBACK
    except ValueError:
        return FALLBACK


def zone_of(contact: dict[str, Any], party_type: str) -> str:
    return contact.get("time_zone") or DEFAULT_TIME_ZONE.get(party_type, "Asia/Tokyo")


def format_date(value: date | str, language: Language) -> str:
    d = date.fromisoformat(value) if isinstance(value, str) else value
    if language is Language.EN:
        return f"{d.day} {d:%B %Y}"
    return f"{d.year}年{d.month}月{d.day}日"


def zone_label(zone_name: str, moment: datetime, language: Language) -> str:
    known = ZONE_LABELS.get(zone_name)
    if known is not None:
        return known[language.value]
    offset = moment.strftime("%z")  # +0200
    return f"{zone_name}, UTC{offset[:3]}:{offset[3:]}"


def format_deadline(value: datetime | str, language: Language, zone_name: str) -> str:
    """A moment in the reader's own time zone, named so that nobody converts in their head."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    local = moment.astimezone(ZoneInfo(zone_name))
    label = zone_label(zone_name, local, language)
    if language is Language.EN:
        return f"{local.day} {local:%B %Y, %H:%M} ({label})"
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}（{label}）"


def sector_name(sector: str, language: Language) -> str:
    return SECTORS.get(sector, SECTORS["other"])[language.value]


def residence_text(status: str, language: Language) -> str:
    return f"{RESIDENCE[status][language.value]}\n{RESIDENCE_NOTE[language.value]}"


def residence_short(status: str, language: Language) -> str:
    separator = ":" if language is Language.EN else "："
    return RESIDENCE[status][language.value].split(separator)[0]


def company_name_for(position: dict[str, Any], language: Language, reader: str) -> str:
    """Students read the company's English name (no Chinese one is collected) beside the
    Japanese one, so that they recognise it on signs in Kitakyushu; in English the English
    name alone. The company itself and the coordinator read the name in their language."""
    ja, en = str(position["company_name_ja"]), str(position["company_name_en"])
    if language is Language.EN:
        return en
    if reader != "student":
        return ja
    return f"{ja}（{en}）" if language is Language.JA else f"{en}（{ja}）"


def short_company_name(position: dict[str, Any], language: Language) -> str:
    """One name only, for subject lines."""
    return str(position["company_name_ja" if language is Language.JA else "company_name_en"])


def action_url(base_url: str, template: str, data: dict[str, Any]) -> str:
    path = ACTION_PATHS.get(template, "/")
    ids = {k: quote(str(v), safe="") for k, v in data.items() if isinstance(v, str)}
    return base_url.rstrip("/") + path.format_map(ids)


def full_stop(text: str) -> str:
    """End a sentence after a name without doubling a full stop ("Co., Ltd." + ".")."""
    return text if text.endswith((".", "。", "!", "?")) else f"{text}."
