"""The roster's rules: how an uploaded file's bytes become text (BOMs, UTF-8, UTF-16, Big5;
binary and unknown encodings refused with a reason), any line ends, whom to invite, and the
invitations' progress per upload."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime, timedelta

import aiosmtplib
import pytest

from services.portal.domain import parse_roster
from services.portal.invitations import permanent
from services.portal.roster import (
    ADDRESS_IN_USE,
    ALREADY_INVITED,
    ALREADY_REGISTERED,
    NOT_TEXT,
    UNKNOWN_ENCODING,
    Unreadable,
    decode_roster,
    invitation_progress,
    skip_reason,
)

ROSTER = (
    "email,name,department\nlin@ntut.edu.tw,林怡君,資訊工程系\nchen@ntut.edu.tw,陳冠廷,機械工程系\n"
)
PEOPLE = [
    ("lin@ntut.edu.tw", "林怡君", "資訊工程系"),
    ("chen@ntut.edu.tw", "陳冠廷", "機械工程系"),
]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"


def people(data: bytes) -> list[tuple[str, str, str]]:
    roster = parse_roster(decode_roster(data))
    assert roster.errors == []
    return [(r.email, r.name, r.department) for r in roster.rows]


@pytest.mark.parametrize(
    "data",
    [
        ROSTER.encode("utf-8"),
        codecs.BOM_UTF8 + ROSTER.encode("utf-8"),
        codecs.BOM_UTF16_LE + ROSTER.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + ROSTER.encode("utf-16-be"),
        ROSTER.encode("utf-16"),  # the platform's order, with its BOM
        ROSTER.encode("utf-16-le"),  # no BOM: told by the NULs of the ASCII addresses
        ROSTER.encode("utf-16-be"),
        ROSTER.encode("cp950"),  # Big5, Excel's default in Taiwan
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf16", "utf16le", "utf16be", "big5"],
)
def test_every_encoding_excel_writes_gives_the_same_names(data: bytes) -> None:
    assert people(data) == PEOPLE


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr-only"])
@pytest.mark.parametrize("codec", ["utf-8", "utf-8-sig", "utf-16", "cp950"])
def test_any_line_ends(end: str, codec: str) -> None:
    assert people(ROSTER.replace("\n", end).encode(codec)) == PEOPLE


def test_a_quoted_name_may_hold_a_comma_and_a_line_end() -> None:
    text = 'email,name,department\r"lin@ntut.edu.tw","Lin, Yi-Chun","EE\rIoT"\r'
    roster = parse_roster(decode_roster(text.encode()))
    assert [(r.name, r.department) for r in roster.rows] == [("Lin, Yi-Chun", "EE\rIoT")]


def test_excel_unicode_text_is_tab_separated() -> None:
    data = ROSTER.replace(",", "\t").replace("\n", "\r\n").encode("utf-16")
    assert people(data) == PEOPLE


@pytest.mark.parametrize(
    "data",
    [
        PNG,
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\x00",
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00",  # an .xlsx (a zip)
        b"a@ntut.edu.tw,A,EE\n\x00\x01\x02\x03",
        b"a@ntut.edu.tw,A,EE\x07\n",  # a control character, NUL-free
        codecs.BOM_UTF16_LE + b"\x00\xd8a\x00",  # UTF-16 with an unpaired surrogate
        codecs.BOM_UTF16_LE + "a@ntut.edu.tw,\x01,EE".encode("utf-16-le"),
    ],
    ids=["png", "pdf", "xlsx", "nul", "control", "bad-utf16", "utf16-control"],
)
def test_binary_files_are_refused_as_not_text(data: bytes) -> None:
    with pytest.raises(Unreadable) as refused:
        decode_roster(data)
    assert refused.value.problem == NOT_TEXT


@pytest.mark.parametrize(
    "data",
    [
        "lin@ntut.edu.tw,Jos\xe9,EE\n".encode("latin-1"),  # neither UTF-8 nor Big5
        b"lin@ntut.edu.tw,\xff\xfe\xfd,EE\n",
        codecs.BOM_UTF8 + "林怡君".encode("cp950"),  # a BOM that lies
    ],
    ids=["latin1", "invalid-bytes", "lying-bom"],
)
def test_text_in_an_encoding_we_cannot_read_is_refused(data: bytes) -> None:
    with pytest.raises(Unreadable) as refused:
        decode_roster(data)
    assert refused.value.problem == UNKNOWN_ENCODING


def test_big5_is_not_read_as_utf8_with_replacement_characters() -> None:
    text = decode_roster("lin@ntut.edu.tw,林怡君,資訊工程系\n".encode("cp950"))
    assert "\ufffd" not in text and "林怡君" in text


def test_an_open_quote_is_a_reason_not_an_exception() -> None:
    # csv.Error (a field over the module's limit after a quote left open) becomes a row error.
    text = 'email,name,department\nlin@ntut.edu.tw,"Lin,EE\n' + "x" * 200_000
    roster = parse_roster(text)
    assert roster.rows == []
    assert roster.errors == [(2, "unreadable_csv")]


def test_a_header_in_any_language_is_not_a_row() -> None:
    for header in ("email,name,department", "電子郵件,姓名,系所", "メールアドレス,氏名,学科"):
        roster = parse_roster(f"{header}\r\nlin@ntut.edu.tw,林怡君,EE\r\nbad,A,EE\r\n")
        assert [r.email for r in roster.rows] == ["lin@ntut.edu.tw"]
        assert roster.errors == [(3, "bad_email")]


def test_rows_keep_their_line_numbers() -> None:
    roster = parse_roster("email,name,department\n\nbad,A,EE\nlin@ntut.edu.tw,林怡君,EE\n")
    assert [(r.line, r.email) for r in roster.rows] == [(4, "lin@ntut.edu.tw")]
    assert roster.errors == [(3, "bad_email")]


def test_whom_to_invite() -> None:
    assert skip_reason(None) is None
    invited = {"_id": "a@ntut.edu.tw", "role": "student", "invited_at": datetime.now(UTC)}
    assert skip_reason(invited) == ALREADY_INVITED
    assert skip_reason({"_id": "a@ntut.edu.tw", "role": "student"}) == ALREADY_REGISTERED
    # One address, one person: staff, or a company's contact, is never made a student.
    assert skip_reason({"_id": "a@ntut.edu.tw", "role": "coordinator"}) == ADDRESS_IN_USE
    assert skip_reason(None, company_contact=True) == ADDRESS_IN_USE


def test_progress_of_the_latest_uploads() -> None:
    first = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
    second = first + timedelta(hours=2)

    def user(n: int, batch: str | None, state: str | None, at: datetime) -> dict[str, object]:
        return {
            "_id": f"s{n}@ntut.edu.tw",
            "invited_at": at,
            "invitation_batch": batch,
            "invitation_state": state,
        }

    users = [
        user(1, "roster-a", "sent", first),
        user(2, "roster-a", "failed", first),
        user(3, "roster-b", "sent", second),
        user(4, "roster-b", "sending", second),
        user(5, "roster-b", "waiting", second),
        user(6, "roster-b", "failed", second),
        user(7, None, None, first),  # invited before invitations were queued: not counted
    ]
    progress = invitation_progress(users)
    assert [(p.batch, p.total, p.sent, p.waiting, p.failed) for p in progress] == [
        ("roster-b", 4, 1, 2, 1),
        ("roster-a", 2, 1, 0, 1),
    ]
    assert progress[0].failed_emails == ["s6@ntut.edu.tw"]
    assert progress[0].uploaded_at == second
    assert len(invitation_progress(users, latest=1)) == 1


def test_only_refusals_by_the_relay_are_final() -> None:
    assert permanent(aiosmtplib.SMTPRecipientsRefused([]))
    assert permanent(aiosmtplib.SMTPResponseException(550, "no such user"))
    assert not permanent(aiosmtplib.SMTPResponseException(451, "try again later"))
    assert not permanent(aiosmtplib.SMTPConnectError("connection refused"))
    assert not permanent(OSError("network unreachable"))
