"""Making templates: built-ins render with sample data, errors name the line, and what may
not be deleted is refused with why."""

from __future__ import annotations

import pytest
from flask import Flask

from newsletter.content import template_editing as editing
from newsletter.content.models import IssueStatus, Template, TemplateKind
from newsletter.content.templates import builtin_templates, get_template
from newsletter.errors import Conflict, TemplateSourceError, ValidationError
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement

GOOD_MJML = (
    "<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n"
    "<mj-text>{{ issue.subject }} for {{ subscriber.name }}</mj-text>\n"
    "<mj-text><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></mj-text>\n"
    "</mj-column>\n</mj-section>\n</mj-body>\n</mjml>\n"
)
GOOD_TEXT = "{{ issue.subject }}\nUnsubscribe: {{ unsubscribe_url }}\n"


@pytest.mark.parametrize("name", ["digest", "statement", "letter", "transactional"])
def test_every_built_in_template_renders_with_sample_data(app: Flask, name: str) -> None:
    template = builtin_templates()[name]
    html, text = editing.preview(template)

    assert html.startswith("<!doctype html>")
    if template.kind is TemplateKind.ISSUE:
        assert "A first statement" in html and "a first statement" in text.lower()
        assert "/unsubscribe/sample" in html  # every issue mail has one
        assert "Ada" in text
        assert "View in your browser" in html + text
    else:
        assert "Your order is on its way" in html and "Track the order" in html
        assert "Hello Ada," in text
    assert "{{" not in html and "%%NL-" not in html


def test_a_template_is_saved_when_it_renders(app: Flask) -> None:
    template = editing.create_template(name=" My  layout ", kind="issue", mjml=GOOD_MJML,
                                       text=GOOD_TEXT)
    assert (template.name, template.kind, template.builtin) == ("My layout", TemplateKind.ISSUE,
                                                                 False)


@pytest.mark.parametrize(
    ("mjml", "line", "words"),
    [
        # an mj-text never closed: mrml gives no position; the line is where it breaks
        ("<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n<mj-text>hi\n</mj-column>\n"
         "</mj-section>\n</mj-body>\n</mjml>", 6, "end of stream"),
        # an unknown element in mj-head: mrml's byte position, mapped to the line
        ("<mjml>\n<mj-head>\n  <mj-foo/>\n</mj-head>\n<mj-body></mj-body>\n</mjml>", 3,
         "unexpected element"),
        # Jinja tags before the error do not move it
        ("<mjml>\n{# a comment\nover lines #}\n<mj-body>\n{% for s in statements %}\n"
         "<mj-section><mj-column><mj-text>{{ s.title }}\n{% endfor %}\n</mj-body>\n</mjml>",
         8, "end of stream"),
        ("<mjml><mj-body>\n\n{{ nobody.knows }}</mj-body></mjml>", 3, "undefined"),
        ("<mjml><mj-body>\n{% if %}</mj-body></mjml>", 2, "expected an expression"),
    ],
)
def test_an_mjml_error_names_its_line(app: Flask, mjml: str, line: int, words: str) -> None:
    with pytest.raises(TemplateSourceError) as caught:
        editing.create_template(name="Broken", kind="issue", mjml=mjml, text=GOOD_TEXT)

    assert caught.value.part == "mjml" and caught.value.field == "mjml"
    assert caught.value.line == line
    assert f"line {line}:" in caught.value.message
    assert words in caught.value.message.lower()
    assert db.session.query(Template).filter_by(name="Broken").count() == 0


def test_a_text_part_error_names_the_text_part(app: Flask) -> None:
    with pytest.raises(TemplateSourceError) as caught:
        editing.create_template(name="T", kind="issue", mjml=GOOD_MJML,
                                text="ok\n{{ issue.subjct.upper() }}\n")
    assert (caught.value.part, caught.value.line) == ("text", 2)


def test_names_are_checked(app: Flask) -> None:
    editing.create_template(name="Taken", kind="issue", mjml=GOOD_MJML, text=GOOD_TEXT)
    for name, error in (("Taken", Conflict), ("digest", Conflict), ("", ValidationError),
                        ("123", ValidationError)):
        with pytest.raises(error):
            editing.create_template(name=name, kind="issue", mjml=GOOD_MJML, text=GOOD_TEXT)


def test_built_in_templates_are_read_only_and_copied_to_change(app: Flask) -> None:
    letter = builtin_templates()["letter"]
    with pytest.raises(Conflict, match="copy it"):
        editing.update_template(letter.id, mjml=GOOD_MJML)

    copy = editing.copy_template(letter.id)
    again = editing.copy_template(letter.id)
    assert (copy.name, again.name) == ("Copy of letter", "Copy of letter (2)")
    assert copy.mjml == letter.mjml and not copy.builtin

    changed = editing.update_template(copy.id, name="Our letter", mjml=GOOD_MJML)
    assert (changed.name, get_template(copy.id).mjml) == ("Our letter", GOOD_MJML)


def test_a_template_used_by_an_unsent_issue_cannot_be_deleted(app: Flask) -> None:
    template = editing.create_template(name="Used", kind="issue", mjml=GOOD_MJML, text=GOOD_TEXT)
    draft = make_issue((make_statement(),), (make_list(),), subject="Our draft",
                       template=template)

    with pytest.raises(Conflict) as caught:
        editing.delete_template(template.id)
    assert f"#{draft.id} “Our draft”" in caught.value.message

    draft.status = IssueStatus.SENT  # a sent issue keeps what was sent, not its template
    db.session.commit()
    editing.delete_template(template.id)
    db.session.expire_all()
    assert db.session.get(Template, template.id) is None
    assert draft.template_id is None


def test_built_in_templates_cannot_be_deleted(app: Flask) -> None:
    builtins = builtin_templates()
    with pytest.raises(Conflict, match="transactional template cannot be deleted"):
        editing.delete_template(builtins["transactional"].id)
    with pytest.raises(Conflict, match="built-in"):
        editing.delete_template(builtins["digest"].id)
