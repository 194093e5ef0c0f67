"""Every parser that takes outside input holds whatever it is given.

Front matter and statements, Markdown, CSV rows, addresses and link tokens: no input makes
them raise anything but the domain's errors (``NewsletterError`` and its tree), and none takes
longer than a bound. Besides arbitrary text, each gets the inputs that cost parsers most:
long runs of one character, deep nesting, YAML anchors and aliases.

The bounds are far above what a linear parser needs here (milliseconds) and far below what
the quadratic and exponential cases cost (seconds to hours). They count the CPU time the test
process spends, not the time on the clock, so a machine busy with other work (CI's two cores
shared) cannot fail them.
"""

from __future__ import annotations

import io
import os
import re
import signal
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.audience.addresses import ascii_address, normalise_email
from newsletter.audience.importer import import_csv
from newsletter.audience.segments import SegmentQueryError, format_query
from newsletter.audience.segments import parse as parse_segment
from newsletter.audience.segments.compile import compile_tree
from newsletter.audience.subscriptions import clean_name, read_link
from newsletter.audience.tokens import PURPOSES, make_token, read_token
from newsletter.content.markdown import html_to_text, markdown_to_text, render_markdown
from newsletter.content.statements import parse_statement, slugify
from newsletter.errors import NewsletterError
from newsletter.extensions import db
from tests.factories import make_list

# Runs once, in the embedded pass (Makefile): what is tested here does not depend on the
# database or broker.
pytestmark = pytest.mark.once


#: per input, in CPU time: a linear parser needs milliseconds; the old heading pattern took
#: seconds
BOUND = timedelta(seconds=3)
IN_CI = bool(os.environ.get("CI"))


def bounded(max_examples: int, *, app: bool = False) -> Callable[[Any], Any]:
    """Hypothesis settings for one property: few examples, each under ``BOUND`` of CPU time
    (``only_domain_errors`` stops it; hypothesis's own deadline is wall-clock time).

    In CI the examples are the same every run (a red build is a real finding, reproducible);
    locally they vary, to keep looking.
    """
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=IN_CI,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
        + ([HealthCheck.function_scoped_fixture] if app else []),
    )


class TookTooLong(AssertionError):
    """A parser still busy after ``BOUND`` of CPU time: stopped, so that a bomb fails the test
    rather than hanging it."""


@contextmanager
def stopped_after(seconds: float) -> Iterator[None]:
    """Raise ``TookTooLong`` in the block once the process has spent ``seconds`` of CPU
    time in it (ITIMER_PROF counts CPU time, which other processes cannot inflate)."""

    def stop(signum: int, frame: Any) -> None:
        raise TookTooLong(f"still running after {seconds:g} s of CPU time")

    previous = signal.signal(signal.SIGPROF, stop)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def only_domain_errors(call: Callable[[], Any]) -> Any:
    """Run ``call``; a domain error is a fine answer, anything else fails the property, and
    so does a call still running after the bound."""
    try:
        with stopped_after(BOUND.total_seconds()):
            return call()
    except NewsletterError as error:
        assert error.message  # says what went wrong
        return None


def sizes(largest: int) -> st.SearchStrategy[int]:
    """Small sizes, and sizes near ``largest``: left alone, hypothesis seldom draws the large
    ones, and they are the ones that show a parser that is not linear."""
    return st.one_of(
        st.integers(min_value=1, max_value=100),
        st.integers(min_value=largest // 2, max_value=largest),
    )


def runs(units: list[str], *, longest: int) -> st.SearchStrategy[str]:
    """One of ``units`` repeated up to ``longest`` characters: what backtracking hates."""
    return st.builds(
        lambda unit, length: unit * max(1, length // len(unit)),
        st.sampled_from(units),
        sizes(longest),
    )


def nested(openers: list[str], closers: list[str], *, deepest: int) -> st.SearchStrategy[str]:
    """Brackets opened (and maybe closed) thousands deep: what recursion hates."""
    return st.builds(
        lambda opener, closer, depth, closed: opener * depth + (closer * depth if closed else ""),
        st.sampled_from(openers),
        st.sampled_from(closers),
        sizes(deepest),
        st.booleans(),
    )


def pieces(alphabet: list[str], *, most: int = 300) -> st.SearchStrategy[str]:
    """Text made of the pieces a grammar cares about, in any order."""
    return st.lists(st.sampled_from(alphabet), max_size=most).map("".join)


# --- front matter and statements ------------------------------------------------------------

YAML_PIECES = [
    "title: ", "date: ", "author: ", "slug: ", "tags: ", "x: ", "&a ", "*a", "&b ", "*b",
    "<<: ", "[", "]", "{", "}", ", ", "- ", "? ", ": ", "\n", "\n  ", "\n    ", "'", '"',
    "|", ">", "!!binary ", "!!python/object:os.system ", "!!set ", "!!timestamp ", "!!int ",
    "%YAML 1.1\n", "---\n", "...\n", "#", "\t", "2020-11-03", "2020-13-45", "12:30:45",
    "1e999", ".nan", "0x" + "f" * 40, "9" * 5000, "~", "null", "yes", "é", "\ufeff", "\x00",
]


def statement(front_matter: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    body = st.one_of(st.just("# Title\n\nBody.\n"), st.text(max_size=200))
    return st.builds(lambda fm, rest: f"---\n{fm}\n---\n{rest}", front_matter, body)


@bounded(150)
@given(
    st.one_of(
        st.text(max_size=2000),
        statement(pieces(YAML_PIECES)),
        statement(nested(["[", "{", "- ", "{a: ", "? "], ["]", "}", ""], deepest=20_000)),
        statement(runs(["&a [*a] ", "*a", " ", "\n", "- ", "'", '"', ":"], longest=60_000)),
    ),
    st.one_of(st.none(), st.text(max_size=80), st.sampled_from(["2020-11-03-x.md", "x.md"])),
)
def test_statements_parse_or_say_why(text: str, filename: str | None) -> None:
    data = only_domain_errors(lambda: parse_statement(text, filename))
    if data is not None:
        assert data.title and data.slug and data.body.strip()


@bounded(40)
@given(
    st.builds(
        lambda levels, width: "\n".join(
            [f"a0: &a0 [{', '.join(['x'] * width)}]"]
            + [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * width)}]" for n in range(1, levels)]
        ),
        st.integers(min_value=2, max_value=12),
        st.integers(min_value=2, max_value=12),
    )
)
def test_alias_bombs_are_refused_at_once(front_matter: str) -> None:
    assert only_domain_errors(lambda: parse_statement(f"---\n{front_matter}\n---\n# T\nx")) is None


@bounded(60)
@given(
    st.one_of(
        st.text(max_size=400),
        runs([" ", "\t", "#", "# ", "=", "-", "`", "~", "*", "_"], longest=60_000).map(
            lambda run: f"# Title{run}end\n\nBody\n"
        ),
        runs([" ", "#", " #", "\t#"], longest=60_000).map(lambda run: f"#{run}\n\nBody\n"),
        runs(["\n", "\n\n", "a\n", "a\n===\n", "```\n", "    x\n"], longest=60_000),
    )
)
def test_titles_from_headings_take_linear_time(text: str) -> None:
    only_domain_errors(lambda: parse_statement(text))


@bounded(100)
@given(st.text(max_size=500))
def test_slugs_are_made_from_anything(text: str) -> None:
    with stopped_after(BOUND.total_seconds()):
        slug = slugify(text)
    assert slug == slug.strip("-") and "--" not in slug and len(slug) <= 200


# --- Markdown -------------------------------------------------------------------------------

MARKDOWN_PIECES = [
    "[", "]", "(", ")", "![", "](", "*", "**", "_", "__", "`", "```", "~~", "<", ">", "</",
    "<a href=", "<img src=", "<script>", "<!--", "-->", "&", "&#", ";", "\\", "|", "-", "#",
    "> ", "- ", "1. ", "\n", "\n\n", "    ", " ", "a", "http://x.example/", "javascript:",
    "<http://", "[x]: ", "\t", "é", "\x00",
]


@bounded(120)
@given(
    st.one_of(
        st.text(max_size=1000),
        pieces(MARKDOWN_PIECES, most=400),
        runs(["[", "![", "*a", "_a ", "` a", "<a", "&#", "**_", "*_", "[]", "\\", "~~a"],
             longest=20_000),
        nested(["[", "> ", "- ", "<div>", "(", "*"], ["]", "", "</div>", ")"], deepest=5_000),
    )
)
def test_markdown_always_renders_to_clean_html_and_text(source: str) -> None:
    with stopped_after(BOUND.total_seconds()):
        html = render_markdown(source)
        markdown_to_text(source)
    assert "<script" not in html.lower()
    for url in re.findall(r"\s(?:href|src)=\"([^\"]*)\"", html):
        assert re.match(r"(https?://|mailto:)", url, re.IGNORECASE), url


@bounded(60)
@given(pieces(["<p>", "</p>", "<a href='https://x'>", "</a>", "<ol start='9'>", "</ol>",
               "<li>", "</li>", "<pre>", "</pre>", "<br>", "<td>", "</td>", "<tr>", "</tr>",
               "<blockquote>", "</blockquote>", "text ", "\n", "&amp;"], most=600))
def test_html_becomes_text_whatever_its_shape(html: str) -> None:
    with stopped_after(BOUND.total_seconds()):
        assert isinstance(html_to_text(html), str)


# --- addresses and names --------------------------------------------------------------------


@bounded(200)
@given(
    st.one_of(
        st.text(max_size=400),
        st.emails(),
        st.builds(lambda local, domain: f"{local}@{domain}", st.text(max_size=80),
                  st.text(max_size=80)),
        runs(["a", "@", ".", "a.", "\\", '"', " ", "é", "xn--", "-"], longest=5_000),
        runs(["a", "."], longest=400).map(lambda local: f"{local}@example.org"),
    )
)
def test_addresses_are_normalised_or_refused(address: str) -> None:
    normal = only_domain_errors(lambda: normalise_email(address))
    if normal is not None:
        assert "@" in normal and normal == normalise_email(normal)
        assert ascii_address(normal).rpartition("@")[2].isascii() or not normal.isascii()


@bounded(100)
@given(st.one_of(st.text(max_size=400), runs(["\x00", "\r\n", "\u2028", " "], longest=5_000)))
def test_names_are_one_clean_line_or_refused(name: str) -> None:
    cleaned = only_domain_errors(lambda: clean_name(name))
    if cleaned is not None:
        assert "\n" not in cleaned and "\r" not in cleaned and len(cleaned) <= 200


# --- CSV rows -------------------------------------------------------------------------------

CSV_HEADERS = ["email,name", "email", "Name,EMAIL,city", "\ufeffemail,name", "name", ""]
CSV_PIECES = [
    ",", '"', '""', "\n", "\r\n", "\r", "ada@example.org", "bo@example.org", "ADA@EXAMPLE.ORG",
    "not-an-address", "@", "Ada", " ", "\ufeff", "\x00", "é", "a" * 300, ";", "\t",
]


@pytest.fixture
def news(app: Flask) -> Any:
    """The list the CSV examples import into (one for all examples of a test)."""
    return make_list("news")


@bounded(60, app=True)
@given(
    st.sampled_from(CSV_HEADERS),
    st.one_of(
        pieces(CSV_PIECES, most=120),
        st.text(max_size=300),
        runs(['"', ",", "\n", "a@b.example,", '"a\n'], longest=20_000),
    ),
)
def test_csv_imports_report_bad_rows_and_never_fail_otherwise(
    news: Any, header: str, rows: str
) -> None:
    text = f"{header}\n{rows}"
    result = only_domain_errors(lambda: import_csv(io.StringIO(text), list_slug="news"))
    if result is not None:
        assert all(line >= 2 for line, _ in result.bad_rows)  # line 1 is the header
    assert not db.session.dirty and not db.session.new  # committed or rolled back, whole


# --- link tokens ----------------------------------------------------------------------------


@bounded(150, app=True)
@given(
    st.sampled_from(PURPOSES),
    st.one_of(
        st.text(max_size=300),
        st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=300),
        runs([".", "-", "_", "A", "="], longest=20_000),
    ),
)
def test_any_token_is_read_or_refused(app: Flask, purpose: str, token: str) -> None:
    only_domain_errors(lambda: read_token(purpose, token, max_age=3600))
    only_domain_errors(lambda: read_link(purpose, token))


@bounded(100, app=True)
@given(
    st.sampled_from(PURPOSES),
    st.integers(min_value=0, max_value=10),
    st.integers(min_value=0, max_value=200),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=3),
)
def test_a_changed_token_is_refused_or_means_the_same(
    app: Flask, purpose: str, at: int, cut: int, replacement: str
) -> None:
    token = make_token(purpose, 7, 3, version=2)
    position = at * len(token) // 10
    changed = token[:position] + replacement + token[position + cut % 4 :]
    # base64 ignores the spare bits of a last character: such a change decodes to the same
    # bytes and is the same token. Nothing else may pass, let alone read as someone else.
    data = only_domain_errors(lambda: read_token(purpose, changed, max_age=3600))
    assert data is None or data == read_token(purpose, token, max_age=3600)


@bounded(60, app=True)
@given(
    st.sampled_from(["/manage/", "/unsubscribe/", "/confirm/"]),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", max_size=200),
)
def test_the_link_pages_answer_any_token_with_a_4xx_page(
    app: Flask, prefix: str, token: str
) -> None:
    client = app.test_client()
    with stopped_after(BOUND.total_seconds()):
        assert client.get(prefix + token).status_code in {400, 404, 308}
        response = client.post(prefix + token, data="List-Unsubscribe=One-Click",
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code in {400, 404, 405, 308}


# --- the segment filter language --------------------------------------------------------------

SEGMENT_FIELDS = ["email", "name", "status", "list", "attributes.city", 'attributes."a b"',
                  "attributes.plan-2024.tier", "subscribed_at", "confirmed_at", "received",
                  "bounced"]
SEGMENT_OPERATORS = ["=", "!=", "<", "<=", ">", ">=", "contains", "in"]
SEGMENT_VALUES = ['"news"', '"Madrid"', '"active"', '"blocklisted"', '"2024-05-01"',
                  '"2024-02-30"', '"a\\"b\\\\c"', '""', "42", "-3.5", "0", "1" * 40,
                  "9" * 400, "1" * 30 + ".5", "0.0000001", "true", "false", "[", "]",
                  "[1, 2]", '["a", "b"]']
SEGMENT_PIECES = [*SEGMENT_FIELDS, *SEGMENT_OPERATORS, *SEGMENT_VALUES, " and ", " or ",
                  "not ", "(", ")", " ", ",", ".", '"', "\\", "!", "\n", "\x00", "é", "_x"]


def comparison() -> st.SearchStrategy[str]:
    """``FIELD OP VALUE`` from the grammar's own words, well or ill matched."""
    return st.builds(
        lambda field, op, value: f"{field} {op} {value}" if op != "in" else f"{field} in [{value}]",
        st.sampled_from(SEGMENT_FIELDS), st.sampled_from(SEGMENT_OPERATORS),
        st.sampled_from(SEGMENT_VALUES),
    ) | st.just("bounced")


def segment_query() -> st.SearchStrategy[str]:
    """Queries the grammar builds: comparisons under and, or, not and parentheses."""
    return st.recursive(
        comparison(),
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"{a} and {b}", inner, inner),
            st.builds(lambda a, b: f"{a} or {b}", inner, inner),
            inner.map(lambda a: f"not {a}"),
            inner.map(lambda a: f"({a})"),
        ),
        max_leaves=30,
    )


@st.composite
def mutated(draw: st.DrawFn, queries: st.SearchStrategy[str]) -> str:
    """A query from the grammar with a few slices cut, repeated or replaced: almost valid,
    which is where a parser's error paths are."""
    text = draw(queries)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        start = draw(st.integers(min_value=0, max_value=len(text)))
        end = draw(st.integers(min_value=start, max_value=min(len(text), start + 12)))
        change = draw(st.sampled_from(["cut", "repeat", "replace"]))
        if change == "cut":
            text = text[:start] + text[end:]
        elif change == "repeat":
            text = text[:end] + text[start:end] * draw(st.integers(1, 400)) + text[end:]
        else:
            text = text[:start] + draw(st.sampled_from(SEGMENT_PIECES)) + text[end:]
    return text


def parse_and_compile(text: str) -> Any:
    """The query's tree, compiled to SQL for both backends, or ``None`` for a refused one."""
    tree = parse_segment(text)
    for name, dialect in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
        str(compile_tree(tree, name).compile(dialect=dialect))
    return tree


@bounded(300)
@given(
    st.one_of(
        st.text(max_size=2000),
        pieces(SEGMENT_PIECES, most=600),
        segment_query(),
        mutated(segment_query()),
        nested(["(", "not ", "not (", "(not "], [")", ""], deepest=5_000).map(
            lambda brackets: brackets + "bounced" + ")" * brackets.count("(")
        ),
        runs(["bounced and ", "(bounced)or", 'email = "a" or ', "not bounced and ", '"',
              '"\\"', "1", "a", "((", "attributes.a", "[1,", " "], longest=10_000),
        st.builds(lambda n: "received in [" + ", ".join(["1"] * n) + "]", sizes(2_000)),
    )
)
def test_segment_queries_parse_and_compile_or_say_where_they_go_wrong(text: str) -> None:
    tree = only_domain_errors(lambda: parse_and_compile(text))
    if tree is not None:
        # what the editor shows again reads back as the same query
        again = parse_and_compile(format_query(tree))
        assert again is not None and format_query(again) == format_query(tree)


@bounded(100)
@given(mutated(segment_query()))
def test_a_refused_segment_query_points_at_a_column_of_it(text: str) -> None:
    try:
        with stopped_after(BOUND.total_seconds()):
            parse_and_compile(text)
    except SegmentQueryError as error:
        assert 1 <= error.position <= len(text) + 1, (error.position, len(text))
        assert error.field == "query"
