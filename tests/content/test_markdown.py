"""Markdown becomes clean HTML (raw HTML allowed, hostile HTML removed) and plain text."""

from __future__ import annotations

import re

import pytest

from newsletter.content.markdown import markdown_to_text, render_markdown
from newsletter.content.statements import parse_statement
from tests.helpers import SEED_STATEMENT

# Runs once, in the embedded pass (Makefile): what is tested here does not depend on the
# database or broker.
pytestmark = pytest.mark.once


def seed_body() -> str:
    return parse_statement(SEED_STATEMENT.read_text(encoding="utf-8"), SEED_STATEMENT.name).body


def test_seed_statement_inline_html_links_survive_as_links() -> None:
    html = render_markdown(seed_body())

    assert (
        '<a href="https://twitter.com/macc_nyc/status/1323661176732004356/photo/1" '
        'rel="noopener noreferrer">'
    ) in html
    assert (
        '<a href="https://itsgoingdown.org/from-nyc-to-the-world-a-call-for-a-peoples-state-of-'
        'emergency/" rel="noopener noreferrer">Peoples’ State of Emergency/Days of Rage</a>'
    ) in html
    assert "under the slogan Everybody Out!</a>" in html
    assert html.count("<p>") == 6


def test_markdown_formatting_renders() -> None:
    html = render_markdown(
        "# Title\n\nSome *emphasis*, **strong**, ~~gone~~ and `code`.\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n> quoted\n\n- one\n- two\n"
    )

    assert "<h1>Title</h1>" in html
    assert "<em>emphasis</em>" in html and "<strong>strong</strong>" in html
    assert "<s>gone</s>" in html or "<del>gone</del>" in html
    assert "<table>" in html and "<td>1</td>" in html
    assert "<blockquote>" in html and "<li>one</li>" in html


def test_plain_urls_are_not_linkified() -> None:
    assert "<a" not in render_markdown("See https://example.org for more.")


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
        '<img src="https://example.org/x.png" onerror="alert(1)">',
        '<a href="https://example.org" onclick="alert(1)">x</a>',
        '<a href="javascript:alert(1)">x</a>',
        '<a href="JaVaScRiPt:alert(1)">x</a>',
        '<a href=" javascript:alert(1)">x</a>',
        '<a href="jav&#x09;ascript:alert(1)">x</a>',
        "[x](javascript:alert(1))",
        '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
        '<iframe src="https://evil.example"></iframe>',
        '<svg onload="alert(1)"><circle /></svg>',
        '<div style="background:url(javascript:alert(1))">x</div>',
        '<form action="https://evil.example"><input name="q"></form>',
        "<style>body{display:none}</style>",
        '<p onmouseover="alert(1)">hover</p>',
        '<object data="https://evil.example/x.swf"></object>',
        '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    ],
)
def test_hostile_html_never_survives(hostile: str) -> None:
    html = render_markdown(f"Before\n\n{hostile}\n\nAfter").lower()
    tags = " ".join(re.findall(r"<[^>]*>", html))  # markup only: harmless text may remain

    for forbidden in (
        "<script", "javascript:", "onerror", "onclick", "onload", "onmouseover", "<iframe",
        "<svg", "style=", "<form", "<input", "<style", "<object", "data:text",
    ):  # fmt: skip
        assert forbidden not in tags
    assert "<script" not in html and "alert(1)</" not in html
    assert "before" in html and "after" in html


def test_only_absolute_http_https_and_mailto_urls_are_kept() -> None:
    html = render_markdown(
        "[web](https://example.org) [plain](http://example.org) [mail](mailto:a@example.org) "
        "[relative](/2020/11/other) [ftp](ftp://example.org/file) "
        '![pic](https://example.org/p.png "Title")'
    )

    assert 'href="https://example.org"' in html
    assert 'href="http://example.org"' in html
    assert 'href="mailto:a@example.org"' in html
    assert "/2020/11/other" not in html and "ftp://" not in html
    assert '<img src="https://example.org/p.png" alt="pic" title="Title">' in html


def test_links_get_noopener() -> None:
    html = render_markdown("[x](https://example.org)")
    assert html.strip() == '<p><a href="https://example.org" rel="noopener noreferrer">x</a></p>'


def test_text_shows_links_as_text_then_url() -> None:
    text = markdown_to_text("Read [the call](https://example.org/call) now.")
    assert text == "Read the call (https://example.org/call) now."


def test_seed_statement_as_text_keeps_every_link_and_no_markup() -> None:
    text = markdown_to_text(seed_body())

    assert text.startswith("A Statement from the Metropolitan Anarchist Coordinating Council")
    assert "[Graphic] (https://twitter.com/macc_nyc/status/1323661176732004356/photo/1)" in text
    assert (
        "Peoples’ State of Emergency/Days of Rage\n(https://itsgoingdown.org/from-nyc-to-the-"
        "world-a-call-for-a-peoples-state-of-emergency/)"
    ) in text
    assert "<" not in text and "&amp;" not in text
    assert all(len(line) <= 78 or "://" in line for line in text.splitlines())


def test_text_lists_quotes_and_tables_read_well() -> None:
    text = markdown_to_text(
        "Intro & more\n\n- one\n- two\n\n1. first\n2. second\n\n> quoted\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert(1)</script>"
    )

    assert text == (
        "Intro & more\n\n- one\n- two\n\n1. first\n2. second\n\n> quoted\n\na | b\n1 | 2"
    )
