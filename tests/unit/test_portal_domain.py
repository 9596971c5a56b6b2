"""Pure rules of the portal: lists, ranked-list moves, sign-in secrets, sessions, rosters,
languages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.portal import i18n
from services.portal.domain import (
    Ambiguous,
    Holder,
    PortalRole,
    SessionPolicy,
    Standing,
    can_answer,
    cohort_steps,
    csrf_token,
    csrf_valid,
    digest,
    holders,
    keep_known,
    list_view,
    normalise_email,
    note_code_valid,
    parse_roster,
    reorder,
    safe_next,
    sign_in_holder,
    standing,
    student_domain_allowed,
    taken_by_other,
    window_start,
)

ROWS = [{"name": n, "n": i} for i, n in enumerate(["delta", "Alpha", "charlie", "bravo", None])]


def view(params: dict[str, str], page_size: int = 2):  # type: ignore[no-untyped-def]
    return list_view(
        ROWS,
        params,
        sorts={"name": lambda r: r["name"], "n": lambda r: r["n"]},
        default_sort="name",
        filters={"q": lambda r, v: v in (r["name"] or "")},
        page_size=page_size,
    )


def test_list_sorts_case_insensitively_with_missing_values_last() -> None:
    v = view({}, page_size=10)
    assert [r["name"] for r in v.items] == ["Alpha", "bravo", "charlie", "delta", None]
    assert [r["n"] for r in view({"sort": "n", "order": "desc"}, 10).items] == [4, 3, 2, 1, 0]


def test_list_pages_and_keeps_the_filters() -> None:
    v = view({"page": "2"})
    assert (v.page, v.pages, v.total) == (2, 3, 5)
    assert [r["name"] for r in v.items] == ["charlie", "delta"]
    filtered = view({"q": "a", "page": "99"})
    assert filtered.params == {"q": "a"}
    assert filtered.page == filtered.pages == 2  # past the end: the last page
    assert view({"page": "x", "sort": "evil"}).page == 1


def test_ranked_list_moves() -> None:
    order = ["a", "b", "c"]
    assert reorder(order, "c", "up") == ["a", "c", "b"]
    assert reorder(order, "a", "up") == order
    assert reorder(order, "a", "down") == ["b", "a", "c"]
    assert reorder(order, "c", "top") == ["c", "a", "b"]
    assert reorder(order, "b", "remove") == ["a", "c"]
    assert reorder(order, "zzz", "up") == order
    assert keep_known(["b", "x", "b", "a"], ["a", "b"]) == ["b", "a"]


def test_only_paths_on_this_site_are_followed_after_sign_in() -> None:
    assert safe_next("/student/proposals/p-1") == "/student/proposals/p-1"
    for bad in ("https://evil.example/", "//evil.example", "/\\evil.example", "", None):
        assert safe_next(bad, "/") == "/"
    # Browsers drop tabs and line breaks from URLs (and leading spaces and controls): each of
    # these is //evil.example to them. No control character may reach a Location header.
    for bad in (
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r/evil.example",
        " //evil.example",
        "\t/x",
        "/student\x00",
        "/student\x7f",
        "/student\x85",
        "/student\x9b",
    ):
        assert safe_next(bad, "/") == "/", repr(bad)
    assert safe_next("/student/positions?q=%0a&page=2") == "/student/positions?q=%0a&page=2"


def test_email_and_student_domains() -> None:
    assert normalise_email("  Yi.Jun@NTUT.edu.tw ") == "yi.jun@ntut.edu.tw"
    assert normalise_email("not an address") is None
    domains = ("ntut.edu.tw",)
    assert student_domain_allowed("a@ntut.edu.tw", domains)
    assert student_domain_allowed("a@mail.ntut.edu.tw", domains)
    assert not student_domain_allowed("a@evilntut.edu.tw", domains)
    assert not student_domain_allowed("a@gmail.com", domains)
    assert student_domain_allowed("a@gmail.com", ())


def test_secrets_are_stored_as_digests_and_csrf_is_bound_to_the_session() -> None:
    assert digest("secret") != "secret" and len(digest("secret")) == 64
    token = csrf_token("key", "session-1")
    assert csrf_valid("key", "session-1", token)
    assert not csrf_valid("key", "session-2", token)
    assert not csrf_valid("other-key", "session-1", token)
    assert not csrf_valid("key", "session-1", None)


def test_sessions_expire_when_idle_or_old() -> None:
    policy = SessionPolicy(idle=timedelta(minutes=60), absolute=timedelta(hours=12))
    now = datetime(2026, 7, 1, 12, tzinfo=UTC)
    assert not policy.expired(now - timedelta(hours=2), now - timedelta(minutes=5), now)
    assert policy.expired(now - timedelta(hours=2), now - timedelta(minutes=61), now)
    assert policy.expired(now - timedelta(hours=13), now - timedelta(minutes=1), now)


def test_rate_limit_windows_are_fixed() -> None:
    at = datetime(2026, 7, 1, 12, 7, 30, tzinfo=UTC)
    assert window_start(at, 15) == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert window_start(at + timedelta(minutes=8), 15) == datetime(2026, 7, 1, 12, 15, tzinfo=UTC)


def test_roster_rows_and_problems() -> None:
    roster = parse_roster(
        "\ufeffemail,name,department\n"
        "wang@ntut.edu.tw,王小明,Mechanical Engineering\n"
        "not-an-address,李,EE\n"
        "wang@ntut.edu.tw,王小明,Mechanical Engineering\n"
        "only@two.tw,columns\n"
        "\n"
    )
    assert [r.email for r in roster.rows] == ["wang@ntut.edu.tw"]
    assert roster.errors == [(3, "bad_email"), (4, "duplicate"), (5, "missing_columns")]


def test_cohort_buttons_follow_the_services_allowed_actions() -> None:
    assert cohort_steps({"state": "draft", "allowed_actions": ["open"]}) == ["open"]
    # Open again from closed: a reopening, only offered before the first round.
    closed = {"state": "closed", "allowed_actions": ["open", "run_round"]}
    assert cohort_steps(closed) == ["reopen", "run_round"]
    matching = {"state": "matching", "allowed_actions": ["run_round", "finish"]}
    assert cohort_steps(matching) == ["run_round", "finish"]
    assert cohort_steps({"state": "finished", "allowed_actions": []}) == []
    assert cohort_steps({"state": "open"}) == []  # another reader's view: no actions


def test_a_proposal_is_answered_when_the_service_allows_it() -> None:
    assert can_answer({"status": "accepted", "allowed_actions": ["accept", "decline"]})
    assert not can_answer({"status": "accepted", "allowed_actions": []})  # answered already
    assert not can_answer({"status": "proposed"})


def test_note_codes_are_codes_not_text() -> None:
    assert note_code_valid("KK-2026-014") and note_code_valid("case/2026.7_b")
    assert not note_code_valid("Yamada asked to stop")  # spaces: free text, maybe a name
    assert not note_code_valid("-leading") and not note_code_valid("x" * 41)


def test_the_standing_of_an_application_takes_matchings_newer_facts() -> None:
    proposed = {
        "state": "proposed",
        "proposal_id": "prop-1",
        "proposal": {"proposal_id": "prop-1", "status": "proposed"},
    }
    # The applications service has not heard yet; matching already has the answer.
    assert standing(proposed, {}, {}).state == "proposed"
    assert standing(proposed, {"prop-1": {"status": "declined"}}, {}).state == "declined"
    assert standing(proposed, {"prop-1": {"status": "confirmed"}}, {}).state == "placed"
    cancelled = standing(
        proposed, {"prop-1": {"status": "cancelled", "cancel_reason": "position_closed"}}, {}
    )
    assert cancelled == Standing("cancelled", ("match_cancel_reason", "position_closed"))
    # A placement the coordinator cancelled, before and after the applications service knows.
    placed = {**proposed, "state": "placed"}
    gone = {"prop-1": {"status": "cancelled", "cancel_reason": "company_withdrew"}}
    assert standing(placed, {}, gone) == Standing(
        "cancelled", ("placement_cancel_reason", "company_withdrew")
    )
    known = {
        "state": "cancelled",
        "proposal_id": None,
        "proposal": {"proposal_id": "prop-1", "status": "placement_cancelled", "reason": "other"},
    }
    assert standing(known, {}, {}) == Standing("cancelled", ("placement_cancel_reason", "other"))
    # What the applications service says stands when matching says nothing newer.
    assert standing({"state": "not_matched", "proposal": None}, {}, {}).state == "not_matched"


def test_language_from_accept_language() -> None:
    assert i18n.negotiate("fr-FR,ja;q=0.8,en;q=0.5") == "ja"
    assert i18n.negotiate("zh-Hant-TW,zh;q=0.9") == "zh-TW"
    assert i18n.negotiate("en-US,zh-TW;q=0.1") == "en"
    assert i18n.negotiate("fr, de") is None
    assert i18n.negotiate(None) is None


def test_times_are_shown_in_the_persons_zone() -> None:
    moment = datetime(2026, 7, 1, 0, 30, tzinfo=UTC)
    i18n.use("zh-TW", "Asia/Taipei")
    assert i18n.format_moment(moment) == "2026年7月1日 08:30 (臺灣時間)"
    i18n.use("ja", "Asia/Tokyo")
    assert i18n.format_moment(moment) == "2026/07/01 09:30 (日本時間)"
    i18n.use("en", "Asia/Tokyo")
    assert i18n.format_moment(moment) == "1 Jul 2026 09:30 (Japan time)"  # as the mails say
    i18n.use("ja", "Asia/Taipei")
    assert i18n.format_moment(moment) == "2026/07/01 08:30 (台湾時間)"
    i18n.use("en", "Europe/London")
    assert i18n.format_moment(moment) == "1 Jul 2026 01:30 (United Kingdom Time)"


def test_people_choose_their_zone_from_a_list_in_their_language() -> None:
    i18n.use("zh-TW")
    options = dict(i18n.time_zone_options())
    assert options["Asia/Taipei"] == "臺灣時間 (UTC+08:00)"
    assert options["Asia/Tokyo"] == "日本時間 (UTC+09:00)"
    # A zone stored from elsewhere (the API takes any IANA name) stays selectable.
    assert "America/Sao_Paulo" in dict(i18n.time_zone_options("America/Sao_Paulo"))


def test_confirmations_agree_with_their_count_in_every_language() -> None:
    from services.portal.web import confirmation

    i18n.use("en")
    assert confirmation(["round_run", {"round": 1, "count": 1}])[0] == "Round 1 proposed 1 match."  # type: ignore[index]
    assert confirmation(["round_run", {"round": 2, "count": 3}])[0] == (  # type: ignore[index]
        "Round 2 proposed 3 matches."
    )
    i18n.use("ja")
    done, next_step = confirmation(["ranking_saved", {"count": 2}])  # type: ignore[misc]
    assert done == "応募者 2 名の順位を保存しました。"
    assert next_step.startswith("次回のマッチング")
    assert confirmation(["no-such-key", {}]) is None


# -- one address, one person -------------------------------------------------------------------


def _company(ident: str, status: str) -> dict[str, str]:
    return {"id": ident, "status": status, "name_ja": f"会社{ident}"}


def test_an_address_signs_in_as_its_one_holder_that_may_sign_in() -> None:
    staff = {"role": "coordinator", "sub": "coord-1", "name": "A"}
    # A rejected registration never holds the address; a pending one holds it but signs in as
    # nobody and does not lock the owner out.
    found = holders(staff, [_company("co-1", "rejected"), _company("co-2", "pending")])
    assert [h.sub for h in found] == ["coord-1", "co-2"]
    assert sign_in_holder(found) == Holder(PortalRole.COORDINATOR, "coord-1", "A")
    approved = holders(None, [_company("co-3", "rejected"), _company("co-4", "approved")])
    assert sign_in_holder(approved) == Holder(PortalRole.COMPANY, "co-4", "会社co-4")
    suspended = holders(None, [_company("co-5", "suspended")])
    assert sign_in_holder(suspended) is not None
    assert sign_in_holder(holders(None, [_company("co-6", "pending")])) is None
    assert sign_in_holder([]) is None


def test_an_address_of_two_live_identities_signs_in_as_nobody() -> None:
    student = {"role": "student", "sub": "stu-1"}
    with pytest.raises(Ambiguous) as raised:
        sign_in_holder(holders(student, [_company("co-1", "approved")]))
    assert {h.sub for h in raised.value.holders} == {"stu-1", "co-1"}
    with pytest.raises(Ambiguous):
        sign_in_holder(holders(None, [_company("co-1", "approved"), _company("co-2", "suspended")]))


def test_an_address_is_taken_by_anyone_but_the_identity_itself() -> None:
    found = holders(None, [_company("co-1", "approved")])
    assert taken_by_other(found, PortalRole.COMPANY, "co-1") is None
    assert taken_by_other(found, PortalRole.COMPANY) == found[0]  # someone new
    assert taken_by_other(found, PortalRole.COORDINATOR) == found[0]
    assert taken_by_other(holders(None, [_company("co-2", "rejected")]), PortalRole.STUDENT) is None


def test_roster_names_lose_bidi_overrides() -> None:
    """A right-to-left override in a roster name would reverse the invitation's greeting."""
    roster = parse_roster("bidi@ntut.edu.tw,\u202eevil\u202c名,\u2066EE\u2069\n")
    assert [(r.name, r.department) for r in roster.rows] == [("evil名", "EE")]
