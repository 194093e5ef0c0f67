"""The forms of the template pages (each carries a CSRF token, Flask-WTF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from newsletter.content.template_editing import MAX_NAME, MAX_SOURCE
from newsletter.web.admin.forms import choices


class TemplateForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=MAX_NAME)])
    kind = RadioField(
        "For",
        choices=choices([
            ("issue", "Issues: statements sent to lists"),
            ("transactional", "Transactional mail: one message through POST /api/v1/tx"),
        ]),
        default="issue",
    )
    mjml = TextAreaField(
        "MJML",
        validators=[DataRequired(), Length(max=MAX_SOURCE)],
        description="MJML with Jinja: {{ … }} for values, {% if … %} and {% for … %}.",
        render_kw={"spellcheck": "false", "autocapitalize": "off", "wrap": "off"},
    )
    text = TextAreaField(
        "Plain text",
        validators=[DataRequired(), Length(max=MAX_SOURCE)],
        description="The text part every message carries beside the HTML (Jinja, not escaped).",
        render_kw={"spellcheck": "false", "autocapitalize": "off", "wrap": "off"},
    )
