"""The portal's catalogs: every message in the code and templates is translated into zh-TW
and ja, with the same placeholders, and the committed .mo files match the .po files."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

PORTAL = Path(__file__).resolve().parents[2] / "services" / "portal"
LOCALES = PORTAL / "locale"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def key(message: str | tuple[str, ...] | list[str], context: str | None) -> str | tuple[str, ...]:
    """A message as gettext finds it: a message in a context is another message."""
    if not isinstance(message, str):
        return tuple(message)
    return f"{context}\x04{message}" if context else message


def extracted() -> set[str | tuple[str, ...]]:
    found: set[str | tuple[str, ...]] = set()
    keywords = {**DEFAULT_KEYWORDS, "Np_": (1, 2), "Nc_": ((1, "c"), 2)}
    for _file, _line, message, _comments, context in extract_from_dir(
        str(PORTAL), METHODS, keywords=keywords
    ):
        found.add(key(message, context))
    return found


def catalog(language: str):  # type: ignore[no-untyped-def]
    with (LOCALES / language / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=language)


@pytest.fixture(scope="module")
def messages() -> set[str | tuple[str, ...]]:
    found = extracted()
    assert len(found) > 300, "the extraction found too few messages; is the mapping right?"
    return found


def test_the_template_lists_every_message(messages: set[str | tuple[str, ...]]) -> None:
    with (LOCALES / "messages.pot").open("rb") as f:
        pot = {key(m.id, m.context) for m in read_po(f) if m.id}
    missing = messages - pot
    assert not missing, f"run `make translations`: not in messages.pot: {sorted(map(str, missing))}"


@pytest.mark.parametrize("language", ["zh_TW", "ja"])
def test_every_message_is_translated(language: str, messages: set[str | tuple[str, ...]]) -> None:
    translated = {}
    for m in catalog(language):
        if not m.id or m.fuzzy:
            continue
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if all(s and s.strip() for s in strings):
            translated[key(m.id, m.context)] = strings
    missing = sorted(str(m) for m in messages if m not in translated)
    assert not missing, f"{language}: missing or untranslated: {missing}"
    for msgid, strings in translated.items():
        source = msgid.split("\x04")[-1] if isinstance(msgid, str) else msgid[0]
        for s in strings:
            assert set(PLACEHOLDER.findall(s)) == set(PLACEHOLDER.findall(source)), (
                f"{language}: placeholders differ in {source!r} -> {s!r}"
            )


@pytest.mark.parametrize("language", ["zh_TW", "ja"])
def test_compiled_catalog_matches_the_po(language: str) -> None:
    with (LOCALES / language / "LC_MESSAGES" / "messages.mo").open("rb") as f:
        compiled = gettext.GNUTranslations(f)
    for m in catalog(language):
        if not m.id or isinstance(m.id, tuple) or not m.string:
            continue
        found = compiled.pgettext(m.context, m.id) if m.context else compiled.gettext(m.id)
        assert found == m.string, f"stale .mo: run `make translations` ({m.id!r})"
