"""What people read for the KPIs and the codes in reports and charts, in the program's three
languages (zh-TW in Taiwan usage, Japanese as the city office writes, plain English).

Codes the table does not know are shown as they are (a new enum value never breaks a report).
"""

from __future__ import annotations

from shared.events.vocabulary import Language

Labels = dict[str, dict[str, str]]


def _l(en: str, ja: str, zh: str) -> dict[str, str]:
    return {"en": en, "ja": ja, "zh-TW": zh}


KPI_NAMES: Labels = {
    "cohort_id": _l("Cohort", "期", "梯次"),
    "rounds": _l("Match rounds", "マッチング回数", "媒合輪數"),
    "applications": _l("Applications", "応募件数", "申請件數"),
    "active_applications": _l("Active applications", "有効な応募", "有效申請"),
    "applicants": _l("Applicants", "応募者数", "申請人數"),
    "seats": _l("Seats offered", "受入枠", "實習名額"),
    "applicants_per_seat": _l("Applicants per seat", "1枠あたり応募者数", "每名額申請人數"),
    "applications_by_sector": _l("Applications by sector", "分野別応募件数", "各產業申請件數"),
    "applications_by_track": _l(
        "Applications by kind of internship", "実習内容別応募件数", "各實習類型申請件數"
    ),
    "seats_by_sector": _l("Seats by sector", "分野別受入枠", "各產業實習名額"),
    "students_proposed": _l("Students proposed", "提案を受けた学生数", "獲得媒合提案的學生數"),
    "proposals": _l("Proposals by state", "状態別提案件数", "各狀態媒合提案數"),
    "proposals_by_sector": _l("Proposals by sector", "分野別提案件数", "各產業媒合提案數"),
    "declines_by_party": _l("Declines by party", "辞退の内訳", "婉拒方分布"),
    "acceptance_rate": _l("Acceptance rate", "承諾率", "接受率"),
    "acceptance_rate_basis": _l("Acceptance rate basis", "承諾率の内訳", "接受率計算基礎"),
    "decline_rate": _l("Decline rate", "辞退率", "婉拒率"),
    "expiry_rate": _l("Expiry rate", "期限切れ率", "逾期率"),
    "placements": _l("Placements", "受入確定数", "實習確定人數"),
    "placements_cancelled": _l("Placements cancelled", "受入取消数", "取消的實習"),
    "placements_by_sector": _l("Placements by sector", "分野別受入確定数", "各產業實習確定人數"),
    "match_rate": _l("Match rate", "マッチング率", "媒合率"),
    "hours_to_proposal": _l(
        "Hours from application to proposal", "応募から提案までの時間", "申請至媒合提案時數"
    ),
    "hours_to_placement": _l(
        "Hours from application to placement", "応募から受入確定までの時間", "申請至實習確定時數"
    ),
    "hours_to_placement_median": _l(
        "Median hours to placement", "受入確定までの時間（中央値）", "至實習確定時數（中位數）"
    ),
    "seats_left_empty": _l("Seats left empty", "未充足の受入枠", "未補滿名額"),
    "completed": _l("Internships completed", "修了したインターンシップ", "完成的實習"),
    "completion_rate": _l("Completion rate", "修了率", "完成率"),
    "outcomes": _l("Outcomes after the internship", "インターンシップ後の進路", "實習後動向"),
    "local_employment_rate": _l(
        "Employment in Kitakyushu", "北九州市内での就職率", "北九州在地就業率"
    ),
    "japan_employment_rate": _l("Employment in Japan", "日本国内での就職率", "在日本就業率"),
}

# The words of README's KPI table, in Japanese and Traditional Chinese (KPI_DEFINITIONS is the
# English).
KPI_DEFINITIONS_LOCAL: Labels = {
    "rounds": _l("", "実施したマッチングの回数", "已進行的媒合輪數"),
    "applications": _l(
        "",
        "提出された応募の件数（応募内容の変更は新たな1件に数えません）",
        "提交的申請件數（修改申請不另計一件）",
    ),
    "active_applications": _l("", "取り下げられていない応募の件数", "未撤回的申請件數"),
    "applicants": _l(
        "",
        "応募した学生の実人数（後に取り下げた学生を含みます）",
        "提出申請的學生人數（含之後撤回者）",
    ),
    "seats": _l(
        "",
        "この期に掲載された全募集職種の受入人数の合計",
        "本梯次公開之所有職缺名額總和",
    ),
    "applicants_per_seat": _l("", "応募者数 ÷ 受入枠", "申請人數 ÷ 實習名額"),
    "applications_by_sector": _l(
        "",
        "分野ごとに、その分野の募集職種を志望に1つ以上含む応募の件数と、それを第1志望とする応募の件数",
        "各產業：志願中含該產業至少一個職缺的申請件數，及以之為第一志願的件數",
    ),
    "applications_by_track": _l(
        "",
        "実習内容ごとに、該当する募集職種を志望に1つ以上含む応募の件数と、それを第1志望とする応募の件数",
        "各實習類型：志願中含該類型至少一個職缺的申請件數，及以之為第一志願的件數",
    ),
    "seats_by_sector": _l("", "分野ごとの受入枠", "各產業的實習名額"),
    "students_proposed": _l(
        "", "1件以上の提案を受けた学生の実人数", "至少獲得一次媒合提案的學生人數"
    ),
    "proposals": _l("", "現在の状態ごとの提案件数", "依目前狀態統計的媒合提案數"),
    "proposals_by_sector": _l("", "分野・状態ごとの提案件数", "依產業與狀態統計的媒合提案數"),
    "declines_by_party": _l(
        "", "辞退された提案を、辞退した側ごとに集計", "遭婉拒的媒合提案，依婉拒方統計"
    ),
    "acceptance_rate": _l(
        "",
        "双方が承諾した提案 ÷ 回答済みまたは期限切れの提案"
        "（確定＋辞退＋期限切れ。取消された提案は除きます）",
        "雙方皆接受的媒合提案 ÷ 已回覆或逾期的提案（確定＋婉拒＋逾期，不含已取消者）",
    ),
    "decline_rate": _l(
        "", "辞退された提案 ÷ 回答済みまたは期限切れの提案", "遭婉拒的提案 ÷ 已回覆或逾期的提案"
    ),
    "expiry_rate": _l(
        "", "期限切れの提案 ÷ 回答済みまたは期限切れの提案", "逾期的提案 ÷ 已回覆或逾期的提案"
    ),
    "placements": _l(
        "",
        "有効な受入確定の数（確定済みまたは修了。取消を除きます）",
        "有效的實習確定人數（已確定或已完成，不含已取消者）",
    ),
    "placements_cancelled": _l("", "確定後に取り消された受入の数", "確定後遭取消的實習人數"),
    "placements_by_sector": _l("", "分野ごとの有効な受入確定数", "各產業有效的實習確定人數"),
    "match_rate": _l("", "有効な受入確定のある学生 ÷ 応募者数", "有有效實習確定的學生 ÷ 申請人數"),
    "hours_to_proposal": _l(
        "",
        "提案を受けた応募ごとの、応募から最初の提案までの時間（中央値、90パーセンタイル、件数）",
        "每件獲得提案的申請，自提交至首次媒合提案的時數（中位數、第90百分位數、件數）",
    ),
    "hours_to_placement": _l(
        "",
        "有効な受入確定ごとの、応募から受入確定までの時間（中央値、90パーセンタイル、件数）",
        "每筆有效的實習確定，自提交申請至確定的時數（中位數、第90百分位數、件數）",
    ),
    "seats_left_empty": _l(
        "",
        "募集職種ごとの受入人数から有効な受入確定数を引いた値の合計",
        "各職缺名額減去有效實習確定人數後的總和",
    ),
    "completed": _l("", "インターンシップを修了した受入の数", "已完成實習的人數"),
    "completion_rate": _l("", "修了 ÷ 有効な受入確定", "已完成 ÷ 有效的實習確定"),
    "outcomes": _l(
        "",
        "修了したインターンシップを、最後に記録された進路ごとに集計",
        "已完成的實習，依最新記錄的動向統計",
    ),
    "local_employment_rate": _l(
        "",
        "受入企業または北九州市内の他社に就職した修了者 ÷ 修了したインターンシップ",
        "獲實習企業或北九州其他企業錄用的完成者 ÷ 已完成的實習",
    ),
    "japan_employment_rate": _l(
        "",
        "日本国内（北九州市を含む）で就職した修了者 ÷ 修了したインターンシップ",
        "在日本（含北九州）就業的完成者 ÷ 已完成的實習",
    ),
}

# The codes inside the figures and tables.
CODES: Labels = {
    # sectors
    "semiconductor": _l("Semiconductors", "半導体", "半導體"),
    "automotive": _l("Automotive", "自動車", "汽車"),
    "robotics_ai": _l("Robotics and AI", "ロボット・AI", "機器人與人工智慧"),
    "other": _l("Other", "その他", "其他"),
    # tracks
    "development_design_programming": _l(
        "Development, design, programming", "開発・設計・プログラミング", "開發、設計與程式設計"
    ),
    "production_line": _l(
        "Production-line development", "生産ラインの開発・導入", "產線開發與導入"
    ),
    "joint_research": _l(
        "Joint research at universities", "大学での共同研究・交流", "大學共同研究與交流"
    ),
    # proposal, placement and application states
    "proposed": _l("proposed", "提案中", "提案中"),
    "accepted": _l("accepted", "承諾", "接受"),
    "confirmed": _l("confirmed", "確定", "已確定"),
    "declined": _l("declined", "辞退", "婉拒"),
    "expired": _l("expired", "期限切れ", "逾期"),
    "cancelled": _l("cancelled", "取消", "已取消"),
    "completed": _l("completed", "修了", "已完成"),
    "submitted": _l("submitted", "応募済み", "已申請"),
    "placed": _l("placed", "受入確定", "實習確定"),
    "not_matched": _l("not matched", "不成立", "未媒合"),
    "withdrawn": _l("withdrawn", "取下げ", "已撤回"),
    "open": _l("open", "募集中", "開放中"),
    "closed": _l("closed", "終了", "已關閉"),
    # residence status (guidance)
    "designated_activities": _l("Designated Activities", "特定活動", "特定活動"),
    "temporary_visitor": _l("Temporary Visitor", "短期滞在", "短期滯在"),
    "cultural_activities": _l("Cultural Activities", "文化活動", "文化活動"),
    # outcomes
    "hired_by_host": _l("hired by the host", "受入企業に就職", "獲實習企業錄用"),
    "hired_in_kitakyushu": _l(
        "hired elsewhere in Kitakyushu", "北九州市内の他社に就職", "獲北九州其他企業錄用"
    ),
    "hired_elsewhere_in_japan": _l(
        "hired elsewhere in Japan", "日本国内の他地域で就職", "於日本其他地區就業"
    ),
    "returned_to_studies": _l("returned to studies", "学業に復帰", "返校繼續學業"),
    "unknown": _l("unknown", "不明", "不明"),
    "not_recorded": _l("not recorded", "未記録", "尚未記錄"),
    # parties and the parts of a figure
    "student": _l("student", "学生", "學生"),
    "company": _l("company", "企業", "企業"),
    "first_choice": _l("first choice", "第1志望", "第一志願"),
    "median": _l("median", "中央値", "中位數"),
    "p90": _l("90th percentile", "90パーセンタイル", "第90百分位數"),
    "count": _l("count", "件数", "件數"),
    "answered_or_expired": _l("answered or expired", "回答済みまたは期限切れ", "已回覆或逾期"),
    "yes": _l("yes", "はい", "是"),
    "no": _l("no", "いいえ", "否"),
}


def word(table: Labels, key: object, language: Language | str) -> str:
    """The label of `key` in `language`; the key itself where the table has none."""
    if isinstance(key, bool):
        key = "yes" if key else "no"
    entry = table.get(str(key))
    lang = Language(language).value
    if not entry or not entry.get(lang):
        return str(key)
    return str(entry[lang])
