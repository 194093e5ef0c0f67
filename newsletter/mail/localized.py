"""The mail a subscriber gets from the tool itself (confirmation, welcome), in their language.

These templates are our own files in ``templates/email/`` (not editable in the admin), so
they render in a plain Jinja environment with the i18n extension, whose ``_()`` and
``{% trans %}`` take the words from Flask-Babel's catalogues in the language given: the
MJML pass autoescapes, the text pass does not. ``pybabel extract`` reads the same files
(``newsletter/translations/babel.cfg``).
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2
from flask import current_app
from flask_babel import force_locale, gettext, ngettext

from newsletter.content.templates import email_template_folder
from newsletter.i18n import subscriber_language
from newsletter.mail.render import compile_mjml, tidy_text


@functools.cache
def _environment(folder: str, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=autoescape,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


def render_subscriber_mail(
    name: str, language: str | None, context: dict[str, Any]
) -> tuple[str, str]:
    """``templates/email/NAME.txt`` and ``NAME.mjml`` in ``language``: (text, html).

    Call with an app context (the catalogues are the app's).
    """
    folder = str(email_template_folder())
    context = {**context, "lang": subscriber_language(language)}
    with speaking(language):
        text = _environment(folder, False).get_template(f"{name}.txt").render(context)
        mjml = _environment(folder, True).get_template(f"{name}.mjml").render(context)
    return tidy_text(text), compile_mjml(mjml, f"{name}.mjml")


def speaking(language: str | None) -> Any:
    """A context in which ``gettext`` answers in ``language`` (for a subject line)."""
    return force_locale(subscriber_language(language))


def render_confirmation(
    list_name: str, confirm_url: str, language: str | None = None
) -> tuple[str, str]:
    """The double opt-in mail's (text, html) for one list and link, in ``language``."""
    site = str(current_app.config["SITE_NAME"])
    context = {"list_name": list_name, "confirm_url": confirm_url, "org_name": site}
    return render_subscriber_mail("confirm", language, context)
