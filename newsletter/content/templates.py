"""Email templates: MJML with a plain-text counterpart, both Jinja, stored in the database.

The built-in templates live in ``templates/email/`` (see ``BUILTINS``) and are copied into
the database on first use, and refreshed when the files change on upgrade: three for issues
("statement", "digest", "letter"; "digest" is the default) and one for transactional mail
("transactional", so ``POST /api/v1/tx`` works on a fresh install). They are read-only;
editors copy one to change it (``content/template_editing.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from newsletter.content.models import Template, TemplateKind
from newsletter.extensions import db
from newsletter.models import get_or_raise


@dataclass(frozen=True)
class Builtin:
    """One built-in template: its name, files in ``templates/email/`` and kind."""

    name: str
    mjml_file: str
    text_file: str
    kind: TemplateKind
    description: str


BUILTINS: tuple[Builtin, ...] = (
    Builtin("digest", "default.mjml", "default.txt", TemplateKind.ISSUE,
            "Several statements with a table of contents (the default)."),
    Builtin("statement", "statement.mjml", "statement.txt", TemplateKind.ISSUE,
            "One statement, large, with its author and date."),
    Builtin("letter", "letter.mjml", "letter.txt", TemplateKind.ISSUE,
            "A plain letter: no banner, the statements as running text."),
    Builtin("transactional", "transactional.mjml", "transactional.txt",
            TemplateKind.TRANSACTIONAL,
            "One message to one person: subject, data.body, an optional button."),
)
BUILTIN_NAMES = frozenset(builtin.name for builtin in BUILTINS)
#: the template of an issue that names none
DEFAULT_NAME = "digest"
#: the built-in template of transactional mail (never deleted)
TRANSACTIONAL_NAME = "transactional"


def email_template_folder() -> Path:
    """The folder of the built-in email templates (``templates/email``)."""
    if has_app_context() and current_app.template_folder:
        return Path(current_app.root_path, str(current_app.template_folder), "email").resolve()
    return Path(__file__).resolve().parents[2] / "templates" / "email"


def read_email_template(filename: str) -> str:
    """The text of one built-in email template file."""
    return _read(email_template_folder() / filename)


@lru_cache(maxsize=64)
def _read_cached(path: Path, mtime_ns: int) -> str:
    return path.read_text(encoding="utf-8")


def _read(path: Path) -> str:
    # Keyed by modification time: the files are read once per change, not on every send.
    return _read_cached(path, path.stat().st_mtime_ns)


def builtin_templates() -> dict[str, Template]:
    """Every built-in template's row by name, created (or brought up to date) from the files.

    Idempotent and safe when several workers run it at once (the name is unique).
    """
    rows = {
        row.name: row
        for row in db.session.scalars(
            select(Template).where(Template.builtin.is_(True), Template.name.in_(BUILTIN_NAMES))
        )
    }
    changed = False
    for builtin in BUILTINS:
        mjml = read_email_template(builtin.mjml_file)
        text = read_email_template(builtin.text_file)
        row = rows.get(builtin.name)
        if row is None:
            row = Template(name=builtin.name, mjml=mjml, text=text, builtin=True,
                           kind=builtin.kind)
            db.session.add(row)
            rows[builtin.name] = row
            changed = True
        elif (row.mjml, row.text, row.kind) != (mjml, text, builtin.kind):
            row.mjml, row.text, row.kind = mjml, text, builtin.kind
            changed = True
    if changed:
        try:
            db.session.commit()
        except IntegrityError:  # another worker created them at the same moment
            db.session.rollback()
            return builtin_templates()
    return rows


def default_template() -> Template:
    """The built-in template of issues that name none ("digest")."""
    return builtin_templates()[DEFAULT_NAME]


def transactional_template() -> Template:
    """The built-in transactional template."""
    return builtin_templates()[TRANSACTIONAL_NAME]


def describe_builtin(name: str) -> str:
    """What a built-in template is for ('' for other names)."""
    return next((b.description for b in BUILTINS if b.name == name), "")


def list_templates(kind: TemplateKind | None = None) -> list[Template]:
    """Every template (of ``kind``), the built-in ones first (created if missing)."""
    builtin_templates()
    query = select(Template).order_by(Template.builtin.desc(), Template.name, Template.id)
    if kind is not None:
        query = query.where(Template.kind == kind)
    return list(db.session.scalars(query))


def get_template(template_id: int) -> Template:
    """The template with this id.

    :raises NotFound: no such template (``field`` is ``template``).
    """
    return get_or_raise(Template, template_id, "template", field="template")


def find_template(key: str | int) -> Template | None:
    """The template with this id (an int) or name (a string), or None; built-ins are made
    first, so their names work on a fresh install."""
    builtin_templates()
    if isinstance(key, int):
        return db.session.get(Template, key)
    return db.session.scalar(select(Template).where(Template.name == key.strip()))
