"""The built-in email template row, made from templates/email/ on first use."""

from __future__ import annotations

import pytest
from flask import Flask

from newsletter.content.models import Template
from newsletter.content.templates import default_template, get_template, list_templates
from newsletter.errors import NotFound
from newsletter.extensions import db


def test_default_template_is_created_once_from_the_files(app: Flask) -> None:
    template = default_template()

    assert template.builtin
    assert "<mjml" in template.mjml and "{{ unsubscribe_url }}" in template.mjml
    assert "{{ unsubscribe_url }}" in template.text
    assert default_template().id == template.id
    assert db.session.query(Template).count() == 1


def test_default_template_is_refreshed_when_the_files_change(app: Flask) -> None:
    template = default_template()
    template.mjml = "<mjml>old</mjml>"
    db.session.commit()

    assert "<mj-body" in default_template().mjml


def test_list_and_get_templates(app: Flask) -> None:
    custom = Template(name="Another", mjml="<mjml></mjml>", text="x")
    db.session.add(custom)
    db.session.commit()

    templates = list_templates()
    assert templates[0].builtin and templates[1].name == "Another"
    assert get_template(custom.id).name == "Another"
    with pytest.raises(NotFound) as caught:
        get_template(999)
    assert caught.value.field == "template"
