"""Rendering an issue once: Jinja into MJML, mjml2html, a text part, placeholders kept."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from newsletter.content.models import Template
from newsletter.content.statements import import_statement
from newsletter.errors import TemplateError
from newsletter.extensions import db
from newsletter.mail.localized import render_confirmation
from newsletter.mail.render import (
    PLACEHOLDERS,
    compile_mjml,
    fill_placeholders,
    preview_issue,
    render_issue,
    render_text,
    web_version,
)
from tests.factories import make_issue, make_list, make_statement
from tests.helpers import SEED_STATEMENT

# Runs once, in the embedded pass (Makefile): what is tested here does not depend on the
# database or broker.
pytestmark = pytest.mark.once


@pytest.fixture
def issue(app: Flask):  # type: ignore[no-untyped-def]
    seed, _ = import_statement(SEED_STATEMENT.read_text(encoding="utf-8"), SEED_STATEMENT.name)
    second = make_statement(
        title="Tom & Jerry <3", author="Ann", body="Second *body*. <script>alert(1)</script>"
    )
    lst = make_list("news", name="MACC News")
    return make_issue(
        (seed, second),
        (lst,),
        subject="After the <election>",
        preheader="Everybody out",
        intro="We **must** act, see [the call](https://example.org/call).",
    )


def test_every_placeholder_survives_mjml2html() -> None:
    source = (
        "<mjml><mj-head><mj-title>{n}</mj-title><mj-preview>{n}</mj-preview></mj-head><mj-body>"
        '<mj-section><mj-column><mj-text>Hi {n} <a href="{u}">x</a></mj-text>'
        '<mj-button href="{m}">{n}</mj-button><mj-image src="https://e.org/i.png" href="{u}" />'
        "</mj-column></mj-section></mj-body></mjml>"
    ).format(n=PLACEHOLDERS["name"], u=PLACEHOLDERS["unsubscribe_url"],
             m=PLACEHOLDERS["manage_url"])  # fmt: skip

    html = compile_mjml(source)

    assert html.count(PLACEHOLDERS["name"]) >= 4
    # nothing mangled: every trace of a placeholder is a whole placeholder
    assert set(re.findall(r"%%NL-[^%\s\"<]*%*", html)) == set(PLACEHOLDERS.values())
    assert f'href="{PLACEHOLDERS["unsubscribe_url"]}"' in html
    assert f'href="{PLACEHOLDERS["manage_url"]}"' in html


def test_render_issue_html_has_layout_statements_and_placeholders(issue) -> None:  # type: ignore[no-untyped-def]
    rendered = render_issue(issue)
    html = rendered.html

    assert rendered.subject == "After the <election>"
    assert html.startswith("<!doctype html>")
    assert "<title>After the &lt;election&gt;</title>" in html  # autoescaped
    assert "After the <election>" not in html
    assert "Everybody out" in html  # preheader
    assert "MACC NEWS" in html  # list name in the header
    assert "<strong>must</strong>" in html  # intro rendered from Markdown
    assert "An Anarchist Call for Post-election Mobilization" in html
    assert "Tom &amp; Jerry &lt;3" in html and "Tom & Jerry <3" not in html
    assert "MACC · 3 November 2020" in html
    assert 'href="https://itsgoingdown.org/from-nyc-to-the-world' in html  # the seed's links
    assert "<script" not in html and "alert(1)" not in html
    assert f'href="{PLACEHOLDERS["unsubscribe_url"]}"' in html
    assert f'href="{PLACEHOLDERS["manage_url"]}"' in html
    assert f"Hello {PLACEHOLDERS['name']}," in html
    assert f'href="https://news.example.org/archive/{issue.id}"' in html  # view in browser
    assert "fonts.googleapis" not in html  # no third-party requests


def test_render_issue_text_part(issue) -> None:  # type: ignore[no-untyped-def]
    text = render_issue(issue).text

    assert text.startswith("MACC NEWS\n\nAfter the <election>\n")
    assert f"View in your browser: https://news.example.org/archive/{issue.id}" in text
    assert f"Hello {PLACEHOLDERS['name']}," in text
    assert "We must act, see the call (https://example.org/call)." in text
    assert "[Graphic] (https://twitter.com/macc_nyc/status/1323661176732004356/photo/1)" in text
    assert "Tom & Jerry <3\n--------------\nAnn" in text  # not escaped: plain text
    assert "Second body." in text and "<script" not in text
    assert f"Unsubscribe: {PLACEHOLDERS['unsubscribe_url']}" in text
    assert f"Manage your subscription: {PLACEHOLDERS['manage_url']}" in text
    assert "&amp;" not in text and "<p>" not in text


def test_issue_without_preheader_or_intro(app: Flask) -> None:
    issue = make_issue((make_statement(),), (make_list(),), subject="Plain")
    rendered = render_issue(issue)
    assert "Plain" in rendered.html and "In this issue" not in rendered.html


def test_fill_placeholders_escapes_the_name_in_html_only() -> None:
    rendered = f"<p>Hi {PLACEHOLDERS['name']}</p><a href=\"{PLACEHOLDERS['unsubscribe_url']}\">"
    values = {
        "name": '<b>Ann</b> & "Bo"',
        "unsubscribe_url": "https://e.org/u?a=1&b=2",
        "manage_url": "https://e.org/m",
    }

    html = fill_placeholders(rendered, html=True, **values)
    text = fill_placeholders(rendered, html=False, **values)

    assert html == (
        '<p>Hi &lt;b&gt;Ann&lt;/b&gt; &amp; &quot;Bo&quot;</p><a href="https://e.org/u?a=1&amp;b=2">'
    )
    assert text == '<p>Hi <b>Ann</b> & "Bo"</p><a href="https://e.org/u?a=1&b=2">'
    assert fill_placeholders(PLACEHOLDERS["name"], html=False, name="", unsubscribe_url="",
                             manage_url="") == "friend"  # fmt: skip


def test_preview_fills_sample_values(issue) -> None:  # type: ignore[no-untyped-def]
    html, text = preview_issue(issue, name="Sam")

    assert "Hello Sam," in html and "Hello Sam," in text
    assert "%%NL-" not in html and "%%NL-" not in text
    assert 'href="https://news.example.org/subscribe"' in html


def test_web_version_has_no_reader_and_links_to_subscribe(issue) -> None:  # type: ignore[no-untyped-def]
    html = web_version(issue)

    assert "%%NL-" not in html
    assert "Hello friend," in html
    assert 'href="https://news.example.org/subscribe">Unsubscribe' in html

    issue.rendered_html = "<p>As sent to %%NL-NAME%%</p>"
    assert web_version(issue) == "<p>As sent to friend</p>"


def test_template_errors_name_the_template_and_reason(issue) -> None:  # type: ignore[no-untyped-def]
    broken = Template(name="Broken", mjml="<mjml>{{ issue.subject", text="x")
    typo = Template(name="Typo", mjml="<mjml><mj-body>{{ isue.subject }}</mj-body></mjml>", text="")
    db.session.add_all([broken, typo])
    db.session.commit()

    issue.template = broken
    with pytest.raises(TemplateError) as caught:
        render_issue(issue)
    assert caught.value.template == "Broken" and "line 1" in caught.value.reason

    issue.template = typo
    with pytest.raises(TemplateError) as caught:
        render_issue(issue)
    assert "isue" in caught.value.reason


@pytest.mark.parametrize(
    "source",
    [
        "{{ 1 // 0 }}",
        "{% for x in 5 %}{% endfor %}",
        "{{ issue.id + 'x' }}",
        "{{ '%d'|format('x') }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    ],
)
def test_runtime_errors_in_a_custom_template_are_template_errors(
    app: Flask, source: str
) -> None:
    template = Template(name="Custom", mjml=f"<mjml><mj-body>{source}</mj-body></mjml>", text="")
    db.session.add(template)
    db.session.commit()
    issue = make_issue((make_statement(),), (make_list("news"),), template=template)

    with pytest.raises(TemplateError) as caught:
        render_issue(issue)
    assert caught.value.template == "Custom"
    assert caught.value.reason


def test_templates_are_sandboxed(issue) -> None:  # type: ignore[no-untyped-def]
    evil = Template(
        name="Evil", mjml="<mjml>{{ issue.__class__.__mro__ }}</mjml>", text="{{ ''.__class__ }}"
    )
    db.session.add(evil)
    db.session.commit()
    issue.template = evil

    with pytest.raises(TemplateError):
        render_issue(issue)


def test_confirmation_mail_has_the_link_in_both_parts(app: Flask) -> None:
    url = "https://news.example.org/confirm/abc.def?x=1&y=2"
    text, html = render_confirmation("News & <Views>", url)

    assert url in text and "News & <Views>" in text
    assert 'href="https://news.example.org/confirm/abc.def?x=1&amp;y=2"' in html
    assert "News &amp; &lt;Views&gt;" in html and "<Views>" not in html
    assert html.startswith("<!doctype html>")


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * (10**8) }}",
        "{{ [0] * 10**8 }}",
        "{{ 2 ** (10**8) > 1 }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '%0999999999d'|format(1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{:>{w}}'.format(1, w=10**9) }}",
        "{{ 'a'.ljust(10**9) }}",
        "{{ 'a'|center(10**9) }}",
        "{{ ('a' * 10**6)|replace('', 'b' * 1000) }}",
    ],
)
def test_a_short_template_cannot_make_a_huge_string(source: str) -> None:
    with pytest.raises(TemplateError) as raised:
        render_text(source, {}, "subject")
    assert raised.value.template == "subject"


def test_rendering_stops_once_the_output_passes_the_cap() -> None:
    with pytest.raises(TemplateError, match="renders to more than"):
        render_text("{% for i in range(100000) %}{{ 'a' * 1000 }}{% endfor %}", {}, "loop")


def test_ordinary_arithmetic_and_formatting_still_render() -> None:
    source = (
        "{{ 3 * 4 }} {{ 2 ** 10 }} {{ 7 % 3 }} {{ '-' * 5 }} {{ '%05d' % 42 }} "
        "{{ '{:>4}'.format(1) }} {{ 'a b'|replace('a', 'c') }} {{ 'x'|center(5) }}|"
    )
    assert render_text(source, {}, "t") == "12 1024 1 ----- 00042    1 c b   x  |"
