"""What the portal's templates print: no bidi embedding, override or isolate (a name stored
before the services dropped them included), and people's text isolated where `|bdi` says."""

from __future__ import annotations

from markupsafe import Markup

from services.portal.web import make_templates


def render(source: str, **values: object) -> str:
    return make_templates().env.from_string(source).render(**values)


def test_printed_values_lose_bidi_controls_but_keep_their_text() -> None:
    stored = "ACME \u202eEVIL\u202c <b>"
    assert render("{{ name }}", name=stored) == "ACME EVIL &lt;b&gt;"
    # In attributes and the title alike (the filter knows no context; none needs them).
    assert render('<input value="{{ v }}">', v="a\u2066b\u2069") == '<input value="ab">'
    # Markup keeps being markup.
    assert render("{{ m }}", m=Markup("<em>\u202ex</em>")) == "<em>x</em>"
    # LRM/RLM and other text stay.
    assert render("{{ n }}", n="שלום\u200f (3)") == "שלום\u200f (3)"
    assert render("{{ n }}", n=3) == "3"


def test_people_s_text_is_isolated_inline_and_escaped() -> None:
    assert render("{{ n|bdi }} (co-1)", n="محمد <x>") == "<bdi>محمد &lt;x&gt;</bdi> (co-1)"
    # Inside a translated sentence, the value only.
    assert render('{{ _("Proposal: %(title)s", title=t|bdi) }}', t="A\u202eB") == (
        "Proposal: <bdi>AB</bdi>"
    )
