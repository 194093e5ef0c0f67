"""Jekyll posts as statements: Liquid resolved, links made absolute, footnotes and tables,
re-imports that say what changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from newsletter.content.jekyll import DEFAULT_PERMALINK, Site, post_path, render_liquid
from newsletter.content.models import Statement
from newsletter.content.statements import import_paths, import_post, statement_html
from newsletter.extensions import db
from newsletter.mail.render import render_issue
from tests.factories import make_issue, make_list
from tests.helpers import FIXTURES

DATA = Path(__file__).resolve().parent.parent / "data"
LIQUID_POST = DATA / "2021-06-15-liquid-footnotes-and-tables.md"
SITE_DIR = DATA / "jekyll-site"
SITE_URL = "https://tenants.example.org/union"
SHARED_STATEMENTS = FIXTURES / "statements"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    app_config["SITE_URL"] = SITE_URL
    yield app_config


def liquid(source: str, **page: Any) -> tuple[str, list[str]]:
    return render_liquid(source, site=Site.from_address(SITE_URL), page=page)


# --- Liquid, tag by tag ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ site.url }}", "https://tenants.example.org"),
        ("{{ site.baseurl }}/x/", "/union/x/"),
        ("{{ site.url }}{{ site.baseurl }}", SITE_URL),
        ("{{ page.title }} by {{ page.author }}", "Hello by Us"),
        ("{{ page.tags | join: ', ' }}", "a, b"),
        ("{% post_url 2020-01-02-other-post %}", f"{SITE_URL}/2020/01/02/other-post.html"),
        ("{% link _posts/2020-01-02-other-post.md %}", f"{SITE_URL}/2020/01/02/other-post.html"),
        ("{% link about.md %}", f"{SITE_URL}/about.html"),
        ("{{ '/css/a.css' | relative_url }}", "/union/css/a.css"),
        ("{{ '/feed.xml' | absolute_url }}", f"{SITE_URL}/feed.xml"),
        ("{% if page.title %}yes{% endif %}", "yes"),
        ("{% assign n = 3 %}{{ n | plus: 1 }}", "4"),
        ("{% comment %}hidden{% endcomment %}shown", "shown"),
    ],
)
def test_each_liquid_tag_resolves(source: str, expected: str) -> None:
    text, warnings = liquid(source, title="Hello", author="Us", tags=["a", "b"])
    assert text == expected and warnings == []


def test_raw_blocks_stay_literal() -> None:
    text, warnings = liquid("Write {% raw %}{{ page.title }} and {% if x %}{% endraw %} as is.")
    assert text == "Write {{ page.title }} and {% if x %} as is." and warnings == []


def test_highlight_becomes_a_fenced_code_block() -> None:
    text, _ = liquid("{% highlight ruby linenos %}\nputs 1\n{% endhighlight %}")
    assert text.strip() == "```ruby\nputs 1\n```"


def test_an_include_from_the_import_is_rendered_with_its_parameters() -> None:
    text, warnings = render_liquid(
        '{% include note.html text="Come" who=page.author %}',
        site=Site.from_address(SITE_URL), page={"author": "Us"},
        includes={"note.html": "<b>{{ include.text }}, {{ include.who }}</b>"},
    )  # fmt: skip
    assert text == "<b>Come, Us</b>" and warnings == []


def test_an_include_the_import_lacks_is_removed_with_a_warning() -> None:
    text, warnings = liquid("a {% include missing.html %} b")
    assert text == "a  b"
    assert warnings == [
        "{% include missing.html %} removed: the import has no _includes/missing.html"
    ]


def test_an_unknown_tag_is_removed_never_shown_and_warned_about() -> None:
    text, warnings = liquid("a {% seo %} b {% gallery x %}inside{% endgallery %} c")
    assert "{%" not in text and text.split() == ["a", "b", "inside", "c"]
    assert "unexpected tag 'seo'" in warnings[0]


def test_liquid_the_library_cannot_parse_does_not_fail_the_import(app: Flask) -> None:
    source = "---\ntitle: Broken\n---\nText {% if %} and {{ page.title | }} and {% for x in %}.\n"
    result = import_post(source, "2021-01-01-broken.md")
    html = statement_html(result.statement)
    assert "Text" in html and "{%" not in html and "{{" not in html
    assert result.warnings and result.warnings[0].startswith("Liquid")


def test_render_with_liquid_false_keeps_the_text_as_it_is(app: Flask) -> None:
    source = "---\ntitle: Docs\nrender_with_liquid: false\n---\nUse `{{ page.title }}`.\n"
    statement = import_post(source, "2021-01-01-docs.md").statement
    assert "{{ page.title }}" in statement.body


# --- addresses ------------------------------------------------------------------------------


def test_relative_links_and_images_resolve_against_the_jekyll_default_permalink(
    app: Flask,
) -> None:
    source = (
        "---\ntitle: T\ncategories: [News]\n---\n"
        "![a](img/a.png) ![b](/assets/b.png) [c](../other.html) [d](#section)\n"
    )
    html = statement_html(import_post(source, "2021-03-04-post.md").statement)
    assert DEFAULT_PERMALINK == "/:categories/:year/:month/:day/:title.html"
    assert 'src="https://tenants.example.org/union/news/2021/03/04/img/a.png"' in html
    assert 'src="https://tenants.example.org/assets/b.png"' in html
    assert 'href="https://tenants.example.org/union/news/2021/03/other.html"' in html
    # a fragment that is no footnote has no page to point to in a mail
    assert 'href="#section"' not in html


def test_relative_links_resolve_against_the_front_matters_permalink(app: Flask) -> None:
    source = "---\ntitle: T\npermalink: /campaigns/:title/\n---\n![a](map.png) [b](../)\n"
    html = statement_html(import_post(source, "2021-03-04-rent.md").statement)
    assert 'src="https://tenants.example.org/union/campaigns/rent/map.png"' in html
    assert 'href="https://tenants.example.org/union/campaigns/"' in html


def test_permalink_styles_and_placeholders() -> None:
    from datetime import date

    when = date(2021, 3, 4)
    assert post_path({"permalink": "pretty"}, "x", when) == "/2021/03/04/x/"
    assert post_path({"permalink": "/:year/:title:output_ext"}, "x", when) == "/2021/x.html"
    assert post_path({"category": "Big News"}, "x", when) == "/big-news/2021/03/04/x.html"


def test_without_a_site_address_relative_links_are_dropped_with_a_warning(
    app: Flask,
) -> None:
    app.config["SITE_URL"] = None
    result = import_post("---\ntitle: T\n---\n[a](page.html) ![i](i.png)\n", "2021-01-01-t.md")
    html = statement_html(result.statement)
    assert "page.html" not in html and "i.png" not in html
    assert any("NEWSLETTER_SITE_URL" in warning for warning in result.warnings)


# --- the fixture post, footnotes, tables, code ----------------------------------------------


def test_the_fixture_post_renders_footnotes_tables_code_and_absolute_links(app: Flask) -> None:
    result = import_post(LIQUID_POST.read_text(), LIQUID_POST.name)
    statement = result.statement
    html = statement_html(statement)

    assert "{%" not in html and "{{ site" not in html
    assert html.count("{{ page.title }}") == 1  # the raw block, and only it
    assert "<table>" in html and "<td>12 Broad</td>" in html
    assert 'href="#fn1"' in html and 'id="fn1"' in html and "Glasgow rent strikes" in html
    assert "<pre><code>curl https://tenants.example.org/feed.xml" in html
    assert 'print("fenced code stays code")' in html
    base = "https://tenants.example.org/union/news/housing/2021/06/15/"
    assert 'src="https://tenants.example.org/assets/img/march.jpg"' in html
    assert f'href="{base}photos/"' in html
    diary = "https://tenants.example.org/union/news/housing/2021/05/01/strike-diary.html"
    assert f'href="{diary}"' in html
    assert 'href="https://tenants.example.org/union/demands/"' in html
    assert "The strike began in June 2021 and Tenants' Union kept" in html
    assert any("'seo'" in warning for warning in result.warnings)
    # front matter kept whole
    assert statement.front_matter["categories"] == ["News", "Housing"]
    assert statement.front_matter["tags"] == ["rent", "strike"]
    assert statement.front_matter["image"] == "/assets/img/march.jpg"
    assert statement.front_matter["layout"] == "post"


def test_the_mail_carries_the_absolute_links(app: Flask) -> None:
    statement = import_post(LIQUID_POST.read_text(), LIQUID_POST.name).statement
    issue = make_issue((statement,), (make_list(),))
    rendered = render_issue(issue)
    assert 'src="https://tenants.example.org/assets/img/march.jpg"' in rendered.html
    assert "{%" not in rendered.html
    assert "Glasgow rent strikes" in rendered.text


def test_a_site_folder_imports_its_posts_with_includes_and_post_urls(app: Flask) -> None:
    report = import_paths([SITE_DIR])
    assert report.errors == []
    assert sorted(s.slug for s in report.created) == ["liquid-footnotes-and-tables", "strike-diary"]
    post = db.session.scalars(
        select(Statement).where(Statement.slug == "liquid-footnotes-and-tables")
    ).one()
    html = statement_html(post)
    assert "<strong>Join the next assembly</strong> on https://tenants.example.org" in html
    # {% post_url %} of a post in the import: its own permalink (/diary/)
    assert 'href="https://tenants.example.org/union/diary/"' in html


def test_every_shared_fixture_renders_without_liquid_left(app: Flask) -> None:
    posts = sorted(SHARED_STATEMENTS.glob("*.md")) if SHARED_STATEMENTS.is_dir() else []
    posts = posts or sorted(DATA.glob("*.md"))
    report = import_paths(posts + [LIQUID_POST])
    assert report.errors == [] and len(report.created) == len(set(posts + [LIQUID_POST]))
    for statement in report.created:
        html = statement_html(statement)
        if statement.slug == "liquid-footnotes-and-tables":
            html = html.replace("{{ page.title }}", "")  # its {% raw %} example
        assert "{%" not in html and "{{" not in html, statement.slug


# --- re-imports -----------------------------------------------------------------------------


def test_reimporting_says_what_changed(app: Flask) -> None:
    first = "---\ntitle: One\ntags: [a]\nlayout: post\n---\nBody\n"
    import_post(first, "2021-01-01-one.md")

    same = import_post(first, "2021-01-01-one.md")
    assert not same.created and same.changes == [] and same.describe() == "unchanged one"

    changed = import_post(
        "---\ntitle: One, again\ntags: [a, b]\nextra: 1\n---\nBody, edited\n", "2021-01-01-one.md"
    )
    assert changed.changes == ["title", "body", "front matter (extra, layout, tags)"]
    assert changed.describe() == "updated one: title, body, front matter (extra, layout, tags)"
    assert db.session.scalars(select(Statement)).one().title == "One, again"


def test_reimporting_matches_by_permalink_when_the_slug_changed(app: Flask) -> None:
    import_post("---\ntitle: Call\npermalink: /call/\n---\nOld\n", "2021-01-01-call.md")
    again = import_post("---\ntitle: Call\npermalink: /call/\n---\nNew\n", "2021-01-02-renamed.md")
    assert not again.created and again.changes == ["date", "body"]
    assert db.session.scalars(select(Statement)).one().slug == "call"


def test_the_cli_prints_what_each_reimport_changed(
    runner: FlaskCliRunner, tmp_path: Path
) -> None:
    post = tmp_path / "2021-01-01-one.md"
    post.write_text("---\ntitle: One\n---\nBody\n")
    assert runner.invoke(args=["statements", "import", str(post)]).exit_code == 0
    post.write_text("---\ntitle: One!\nauthor: Us\n---\nBody\n")
    result = runner.invoke(args=["statements", "import", str(post)])
    assert result.exit_code == 0, result.output
    assert "updated  one: title, author" in result.output
    result = runner.invoke(args=["statements", "import", str(post)])
    assert "unchanged one" in result.output
