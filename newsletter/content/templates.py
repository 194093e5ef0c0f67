"""Email templates: MJML with a plain-text counterpart, both Jinja, stored in the database.

The built-in template lives in ``templates/email/default.mjml`` and ``default.txt`` and is
copied into the database on first use (and refreshed when the files change on upgrade).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from newsletter.content.models import Template
from newsletter.extensions import db
from newsletter.models import get_or_raise

DEFAULT_NAME = "Default"


def email_template_folder() -> Path:
    """The folder of the built-in email templates (``templates/email``)."""
    from flask import current_app, has_app_context

    if has_app_context() and current_app.template_folder:
        return Path(current_app.root_path, str(current_app.template_folder), "email").resolve()
    return Path(__file__).resolve().parents[2] / "templates" / "email"


def read_email_template(filename: str) -> str:
    """The text of one built-in email template file."""
    return (email_template_folder() / filename).read_text(encoding="utf-8")


def default_template() -> Template:
    """The built-in template's row, created (or brought up to date) from the files."""
    mjml = read_email_template("default.mjml")
    text = read_email_template("default.txt")
    template = _builtin()
    if template is None:
        template = Template(name=DEFAULT_NAME, mjml=mjml, text=text, builtin=True)
        db.session.add(template)
        try:
            db.session.commit()
        except IntegrityError:  # another worker created it at the same moment
            db.session.rollback()
            template = _builtin()
            assert template is not None
        return template
    if template.mjml != mjml or template.text != text:
        template.mjml, template.text = mjml, text
        db.session.commit()
    return template


def _builtin() -> Template | None:
    return db.session.scalar(
        select(Template).where(Template.builtin.is_(True), Template.name == DEFAULT_NAME)
    )


def list_templates() -> list[Template]:
    """Every template, the built-in one first (created if missing)."""
    default_template()
    query = select(Template).order_by(Template.builtin.desc(), Template.name, Template.id)
    return list(db.session.scalars(query))


def get_template(template_id: int) -> Template:
    """The template with this id.

    :raises NotFound: no such template (``field`` is ``template``).
    """
    return get_or_raise(Template, template_id, "template", field="template")
