"""Languages: gettext catalogs (Babel), the language of this request, and dates and times in
the person's time zone."""

from __future__ import annotations

import gettext as _gettext
from contextvars import ContextVar
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time, get_timezone_name
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANGUAGES = ("zh-TW", "ja", "en")
SOURCE_LANGUAGE = "en"  # the msgids are English
LANGUAGE_NAMES = {"zh-TW": "繁體中文", "ja": "日本語", "en": "English"}
# Directory names of the catalogs, and the CLDR locales used for dates.
CATALOG = {"zh-TW": "zh_TW", "ja": "ja"}
CLDR = {"zh-TW": "zh_Hant_TW", "ja": "ja_JP", "en": "en_GB"}

_language: ContextVar[str] = ContextVar("language", default=SOURCE_LANGUAGE)
_time_zone: ContextVar[str] = ContextVar("time_zone", default="Asia/Tokyo")


@cache
def translations(language: str) -> _gettext.NullTranslations:
    if language not in CATALOG:
        return _gettext.NullTranslations()
    return Translations.load(str(LOCALE_DIR), [CATALOG[language]], domain=DOMAIN)


def use(language: str, time_zone: str | None = None) -> None:
    """Set the language (and time zone) of the current request."""
    _language.set(language if language in LANGUAGES else SOURCE_LANGUAGE)
    if time_zone:
        _time_zone.set(time_zone)


def current_language() -> str:
    return _language.get()


def current_time_zone() -> str:
    return _time_zone.get()


def gettext(message: str) -> str:
    return translations(_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_language.get()).ngettext(singular, plural, n)


def translate_in(language: str, message: str, **values: Any) -> str:
    """A message in a given language (e-mails are in the recipient's, not the request's)."""
    text = translations(language).gettext(message)
    return text % values if values else text


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated where it is shown."""
    return message


def Nc_(context: str, message: str) -> str:
    """Marks a message said in a context (extracted with `-k Nc_:1c,2`): a short word that
    could mean something else elsewhere gets its own translation. Translate it with
    `pgettext(context, message)`."""
    return message


def pgettext(context: str, message: str) -> str:
    return translations(_language.get()).pgettext(context, message)


def Np_(singular: str, plural: str) -> tuple[str, str]:
    """Marks a message with a plural form (extracted with `-k Np_:1,2`)."""
    return singular, plural


def parse_language(value: str | None) -> str | None:
    """One of our languages for a tag such as zh-Hant-TW, zh_TW, ja-JP or en-US."""
    if not value:
        return None
    tag = value.strip().replace("_", "-").lower()
    if tag.startswith("zh"):
        # The students are in Taiwan; Traditional Chinese is the only Chinese we write.
        return "zh-TW"
    if tag.startswith("ja"):
        return "ja"
    if tag.startswith("en"):
        return "en"
    return None


def negotiate(accept_language: str | None) -> str | None:
    """The best of our languages for an Accept-Language header, by its q-values."""
    if not accept_language:
        return None
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        language = parse_language(tag)
        if language and q > 0:
            choices.append((-q, index, language))
    return min(choices)[2] if choices else None


def locale() -> Locale:
    return Locale.parse(CLDR[_language.get()])


def zone(time_zone: str | None = None) -> ZoneInfo:
    try:
        return ZoneInfo(time_zone or _time_zone.get())
    except (KeyError, ValueError):
        return ZoneInfo("Asia/Tokyo")


def as_datetime(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def format_moment(value: datetime | str | None) -> str:
    """A date and time in the person's time zone, with the zone named."""
    moment = as_datetime(value)
    if moment is None:
        return ""
    local = moment.astimezone(zone())
    day = format_date(local.date(), "medium", locale=locale())
    time = format_time(local, "HH:mm", locale=locale())
    return f"{day} {time} ({zone_name()})"


# The program's two zones are named as the mails name them (Taiwan usage: 臺灣時間); other
# zones by CLDR's name.
ZONE_NAMES = {
    ("zh-TW", "Asia/Taipei"): "臺灣時間",
    ("ja", "Asia/Taipei"): "台湾時間",
    ("en", "Asia/Taipei"): "Taiwan time",
    ("zh-TW", "Asia/Tokyo"): "日本時間",
    ("ja", "Asia/Tokyo"): "日本時間",
    ("en", "Asia/Tokyo"): "Japan time",
}

# Zones a person may choose on their profile: the program's two first, then where students
# and staff may be while travelling. Any IANA name the APIs accept is shown if already stored.
TIME_ZONES = (
    "Asia/Taipei",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Manila",
    "Asia/Singapore",
    "Asia/Bangkok",
    "Asia/Ho_Chi_Minh",
    "Asia/Kolkata",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "UTC",
)


def zone_name(time_zone: str | None = None) -> str:
    tz = zone(time_zone)
    if tz.key == "UTC":
        return "UTC"
    return ZONE_NAMES.get((_language.get(), tz.key)) or get_timezone_name(
        tz, width="long", locale=locale()
    )


def time_zone_options(current: str | None = None) -> list[tuple[str, str]]:
    """(IANA name, "Japan time (UTC+09:00)") for a select, in the reader's language."""
    names = list(TIME_ZONES)
    if current and current not in names:
        names.append(current)
    now = datetime.now(UTC)
    options = []
    for name in names:
        offset = now.astimezone(zone(name)).strftime("%z")
        options.append((name, f"{zone_name(name)} (UTC{offset[:3]}:{offset[3:]})"))
    return options


def format_day(value: date | datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.astimezone(zone()).date()
    return format_date(value, "medium", locale=locale())
