"""Who hears what, in which language, and how facts are worded (pure, no I/O).

Each public event becomes zero or more messages, one per recipient, identified by
(event id, recipient); the text is rendered when the message is sent, in the recipient's
preferred language (English when a template or language is missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from shared.events import (
    ApplicationSubmitted,
    CloudEvent,
    MatchAccepted,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    PlacementConfirmed,
    RoundCompleted,
)
from shared.events.vocabulary import Language, Party

COORDINATOR = "coordinator"
FALLBACK = Language.EN

# Where each language's readers are: deadlines are shown in their local time.
LOCAL_TIME = {
    Language.JA: (timezone(timedelta(hours=9)), "JST"),
    Language.ZH_TW: (timezone(timedelta(hours=8)), "台北時間"),
    Language.EN: (timezone(timedelta(hours=9)), "JST"),
}

SECTORS = {
    "semiconductor": {"en": "semiconductors", "ja": "半導体", "zh-TW": "半導體"},
    "automotive": {"en": "automotive", "ja": "自動車", "zh-TW": "汽車"},
    "robotics_ai": {"en": "robotics / AI", "ja": "ロボット・AI", "zh-TW": "機器人與人工智慧"},
    "other": {"en": "other industries", "ja": "その他", "zh-TW": "其他產業"},
}

RESIDENCE = {
    "designated_activities": {
        "en": "Designated Activities (特定活動, notice no. 9): a paid internship that is part "
        "of your curriculum. Taipei Tech and the host company need an internship agreement.",
        "ja": "在留資格「特定活動」（告示9号）：教育課程の一部として行う有償のインターンシップ"
        "です。国立台北科技大学と受入企業の間でインターンシップ協定を結ぶ必要があります。",
        "zh-TW": "在留資格「特定活動」（告示第9號）：屬於學校課程一部分的有薪實習，需由國立臺北科技"
        "大學與接待企業簽訂實習協議。",
    },
    "temporary_visitor": {
        "en": "Temporary Visitor (短期滞在): an unpaid internship of at most 90 days.",
        "ja": "在留資格「短期滞在」：90日以内の無償インターンシップです。",
        "zh-TW": "在留資格「短期滯在」：90天以內的無薪實習。",
    },
    "cultural_activities": {
        "en": "Cultural Activities (文化活動): an unpaid internship of more than 90 days.",
        "ja": "在留資格「文化活動」：90日を超える無償インターンシップです。",
        "zh-TW": "在留資格「文化活動」：超過90天的無薪實習。",
    },
}

RESIDENCE_NOTE = {
    "en": "This is guidance, not a decision: please confirm with the Immigration Services "
    "Agency of Japan before applying for your status.",
    "ja": "これは目安であり、判断ではありません。申請の前に出入国在留管理庁にご確認ください。",
    "zh-TW": "以上僅供參考，並非最終判定；申請前請向日本出入國在留管理廳確認。",
}


@dataclass(frozen=True)
class Planned:
    """One message to send: to whom, which template, and the public facts it needs."""

    recipient_id: str  # a party id, or "coordinator"
    recipient_kind: str  # student | company | coordinator
    template: str  # e.g. "match_proposed.student"
    # Parties whose personal data the rendered body will contain (for erasure).
    about: tuple[str, ...] = ()


def plan(event: CloudEvent[Any]) -> list[Planned]:
    """Decide who is told about `event`."""
    data = event.data
    if isinstance(data, ApplicationSubmitted):
        return [Planned(data.student_id, "student", "application_submitted.student")]
    if isinstance(data, MatchProposed):
        return [
            Planned(data.student_id, "student", "match_proposed.student"),
            Planned(data.company_id, "company", "match_proposed.company", (data.student_id,)),
        ]
    if isinstance(data, MatchAccepted):
        # The other side learns that this side said yes, unless it already said yes too:
        # then the placement confirmation tells everyone.
        if data.completes_placement:
            return []
        if data.party is Party.STUDENT:
            return [
                Planned(data.company_id, "company", "match_accepted.company", (data.student_id,))
            ]
        return [Planned(data.student_id, "student", "match_accepted.student")]
    if isinstance(data, MatchDeclined):
        return [
            Planned(data.student_id, "student", "match_declined.student"),
            Planned(data.company_id, "company", "match_declined.company", (data.student_id,)),
        ]
    if isinstance(data, MatchExpired):
        return [
            Planned(data.student_id, "student", "match_expired.student"),
            Planned(data.company_id, "company", "match_expired.company", (data.student_id,)),
        ]
    if isinstance(data, PlacementConfirmed):
        return [
            Planned(data.student_id, "student", "placement_confirmed.student"),
            Planned(data.company_id, "company", "placement_confirmed.company", (data.student_id,)),
            Planned(
                COORDINATOR, COORDINATOR, "placement_confirmed.coordinator", (data.student_id,)
            ),
        ]
    if isinstance(data, RoundCompleted):
        return [Planned(COORDINATOR, COORDINATOR, "round_completed.coordinator")]
    return []


def language_of(preferred: str | None) -> Language:
    try:
        return Language(preferred) if preferred else FALLBACK
    except ValueError:
        return FALLBACK


def format_date(value: date | str, language: Language) -> str:
    d = date.fromisoformat(value) if isinstance(value, str) else value
    if language is Language.EN:
        return f"{d.day} {d:%B %Y}"
    return f"{d.year}年{d.month}月{d.day}日"


def format_deadline(value: datetime | str, language: Language) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    zone, label = LOCAL_TIME[language]
    local = moment.astimezone(zone)
    if language is Language.EN:
        return f"{local.day} {local:%B %Y, %H:%M} {label}"
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}（{label}）"


def sector_name(sector: str, language: Language) -> str:
    return SECTORS.get(sector, SECTORS["other"])[language.value]


def residence_text(status: str, language: Language) -> str:
    return f"{RESIDENCE[status][language.value]}\n{RESIDENCE_NOTE[language.value]}"
