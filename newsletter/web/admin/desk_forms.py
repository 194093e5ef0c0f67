"""Forms of the writing desk: the statement editor, media uploads, test sends."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from newsletter.content.statements import MAX_AUTHOR, MAX_SLUG, MAX_STATEMENT_CHARS, MAX_TITLE
from newsletter.web.admin.forms import MultiCheckboxField


class StatementForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=MAX_TITLE)])
    author = StringField("Author", validators=[Optional(), Length(max=MAX_AUTHOR)])
    date = DateField("Date", validators=[Optional()])
    slug = StringField(
        "Slug",
        validators=[Optional(), Length(max=MAX_SLUG)],
        description="In links to it; made from the title when left empty.",
    )
    body = TextAreaField(
        "Text",
        validators=[DataRequired(), Length(max=MAX_STATEMENT_CHARS)],
        description="Markdown. The preview beside it is what readers will get.",
    )
    # Set by the editor's script once the live preview has shown the text.
    previewed = HiddenField(default="")


class MediaForm(FlaskForm):
    # No FileAllowed: the name proves nothing, the content is checked with Pillow.
    file = FileField("Image", validators=[FileRequired("Choose an image.")])


class ProofForm(FlaskForm):
    to = MultiCheckboxField("Send a test to", choices=[], coerce=int)
