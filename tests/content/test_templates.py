"""The built-in email templates' rows, made from templates/email/ on first use."""

from __future__ import annotations

import pytest
from flask import Flask

from newsletter.content.models import Template, TemplateKind
from newsletter.content.templates import (
    builtin_templates,
    default_template,
    get_template,
    list_templates,
    transactional_template,
)
from newsletter.errors import NotFound
from newsletter.extensions import db


def test_the_built_in_templates_are_created_once_from_the_files(app: Flask) -> None:
    template = default_template()

    assert template.builtin and template.name == "digest"
    assert "<mjml" in template.mjml and "{{ unsubscribe_url }}" in template.mjml
    assert "{{ unsubscribe_url }}" in template.text
    assert default_template().id == template.id
    names = {row.name: row.kind for row in db.session.query(Template)}
    assert names == {
        "digest": TemplateKind.ISSUE, "statement": TemplateKind.ISSUE,
        "letter": TemplateKind.ISSUE, "transactional": TemplateKind.TRANSACTIONAL,
    }
    builtin_templates()
    assert db.session.query(Template).count() == 4  # idempotent
    assert transactional_template().kind is TemplateKind.TRANSACTIONAL


def test_the_default_template_is_refreshed_when_the_files_change(app: Flask) -> None:
    template = default_template()
    template.mjml = "<mjml>old</mjml>"
    db.session.commit()

    assert "<mj-body" in default_template().mjml


def test_list_and_get_templates(app: Flask) -> None:
    custom = Template(name="Another", mjml="<mjml></mjml>", text="x")
    db.session.add(custom)
    db.session.commit()

    templates = list_templates()
    assert [t.builtin for t in templates] == [True] * 4 + [False]
    assert templates[-1].name == "Another"
    assert [t.name for t in list_templates(TemplateKind.TRANSACTIONAL)] == ["transactional"]
    assert get_template(custom.id).name == "Another"
    with pytest.raises(NotFound) as caught:
        get_template(999)
    assert caught.value.field == "template"
