"""The admin pages' forms; every one carries a CSRF token (Flask-WTF)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired, FileSize
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget

from newsletter.auth.services import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

MAX_UPLOAD_BYTES = 5 * 1024 * 1024


def choices(pairs: list[tuple[str, str]]) -> list[Any]:
    """Fixed choices in the form this WTForms wants (3.3 deprecates bare tuples)."""
    try:
        from wtforms.fields.choices import SelectChoice
    except ImportError:  # WTForms before 3.3
        return list(pairs)
    return [SelectChoice(value=value, label=label) for value, label in pairs]


class MultiCheckboxField(SelectMultipleField):
    """A multiple choice shown as a list of checkboxes rather than a select box."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ActionForm(FlaskForm):
    """A button that acts (log out, send): nothing but the CSRF token."""


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)]
    )


def new_password_field(label: str) -> PasswordField:
    """A field for choosing a password, with the length rules every password follows."""
    return PasswordField(
        label,
        validators=[
            DataRequired(),
            Length(
                min=MIN_PASSWORD_LENGTH,
                message=f"The password must have at least {MIN_PASSWORD_LENGTH} characters.",
            ),
            Length(max=MAX_PASSWORD_LENGTH),
        ],
        description=f"At least {MIN_PASSWORD_LENGTH} characters; a passphrase is best.",
    )


class SetupForm(FlaskForm):
    email = EmailField("Your email", validators=[DataRequired(), Email(), Length(max=320)])
    password = new_password_field("Password")
    confirm = PasswordField(
        "Repeat the password",
        validators=[DataRequired(), EqualTo("password", message="The passwords differ.")],
    )


class ListForm(FlaskForm):
    slug = StringField(
        "Slug",
        validators=[
            DataRequired(),
            Length(max=100),
            Regexp(
                r"^[a-z0-9][a-z0-9-]*$",
                message="Lower-case letters, digits and dashes, starting with a letter or digit.",
            ),
        ],
        description="Used in links and the API, e.g. weekly-news.",
    )
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=5000)])
    public = BooleanField("Public: shown on the signup page", default=True)
    optin = RadioField(
        "Opt-in",
        choices=choices(
            [
                ("double", "Double: people confirm by a link mailed to them"),
                ("single", "Single: subscribed at once"),
            ]
        ),
        default="double",
    )


class SubscriberForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    lists = MultiCheckboxField("Lists", choices=[])
    confirmed = BooleanField(
        "Already confirmed (they asked to join elsewhere; no confirmation mail is sent)"
    )


class ImportForm(FlaskForm):
    file = FileField(
        "CSV or TSV file",
        validators=[
            FileRequired("Choose a CSV file."),
            FileAllowed(["csv", "tsv", "txt"], "A .csv, .tsv or .txt file, please."),
            FileSize(MAX_UPLOAD_BYTES * 4),
        ],
        description="A header row with an email column (or Email Address); name (or First "
        "Name and Last Name), lists (slugs separated by | or ;) and any other columns as "
        "attributes. Exports from listmonk and Mailchimp work as they are.",
    )
    list_slug = SelectField("List", choices=[], validators=[Optional()])
    mode = RadioField(
        "What to do",
        choices=choices([
            ("subscribe", "Subscribe as confirmed (they opted in elsewhere; no mail)"),
            ("unconfirmed", "Subscribe unconfirmed and mail each a confirmation link"),
            ("unsubscribe", "Unsubscribe them (from every list when none is chosen)"),
            ("blocklist", "Blocklist them (never mailed again)"),
        ]),
        default="subscribe",
        validators=[DataRequired()],
    )
    overwrite = RadioField(
        "People already here",
        choices=choices([
            ("overwrite", "Update their name and attributes from the file"),
            ("keep", "Keep their name and attributes"),
        ]),
        default="overwrite",
        validators=[DataRequired()],
    )
    label = StringField(
        "How did these people consent?",
        description="Kept with each new subscription's record of consent, with the file's "
        "name (for example: signed up on paper at the 2026 fair).",
        validators=[Optional(), Length(max=200)],
    )
    encoding = SelectField(
        "Encoding",
        choices=choices([
            ("", "Detect"), ("utf-8", "UTF-8"), ("cp1252", "Windows-1252 / Latin-1"),
            ("utf-16", "UTF-16 (Excel “Unicode text”)"),
        ]),
        validators=[Optional()],
    )
    delimiter = SelectField(
        "Delimiter",
        choices=choices([
            ("", "Detect"), (",", "Comma"), (";", "Semicolon"), ("tab", "Tab"), ("|", "Pipe"),
        ]),
        validators=[Optional()],
    )


#: a zip of a Jekyll site's posts may be larger than one file (its caps apply unpacked)
MAX_ZIP_UPLOAD_BYTES = 20 * 1024 * 1024


class StatementImportForm(FlaskForm):
    file = FileField(
        "Markdown or zip file",
        validators=[
            Optional(),
            FileAllowed(["md", "markdown", "txt", "zip"], "A .md or .zip file, please."),
            FileSize(MAX_ZIP_UPLOAD_BYTES),
        ],
    )
    markdown = TextAreaField(
        "…or paste Markdown with front matter",
        validators=[Optional(), Length(max=MAX_UPLOAD_BYTES)],
        render_kw={"placeholder": "---\ntitle: Our statement\ndate: 2024-05-01\n---\n\nText…"},
    )

    def validate(self, extra_validators: Any = None) -> bool:
        """One of the two sources is needed."""
        if not super().validate(extra_validators):
            return False
        if not self.file.data and not (self.markdown.data or "").strip():
            self.markdown.errors = ["Upload a file or paste Markdown."]
            return False
        return True


class IssueForm(FlaskForm):
    subject = StringField("Subject", validators=[DataRequired(), Length(max=300)])
    preheader = StringField(
        "Preheader",
        validators=[Optional(), Length(max=300)],
        description="The line mail apps show after the subject.",
    )
    sender_name = StringField(
        "Sender name",
        validators=[Optional(), Length(max=200)],
        description="Who the mail is from, as inboxes show it; empty: the usual name.",
    )
    intro = TextAreaField(
        "Introduction", validators=[Optional()], description="Markdown, before the statements."
    )
    statements = MultiCheckboxField("Statements", choices=[], coerce=int)
    lists = MultiCheckboxField("Send to lists", choices=[])
    segments = SelectMultipleField(
        "Narrow to segments",
        choices=[],
        coerce=int,
        description=(
            "Optional. With lists ticked, only their confirmed subscribers who match every "
            "chosen segment get the issue. With segments and no lists, everyone confirmed on "
            "at least one list who matches every segment gets it. Blocklisted and "
            "unsubscribed people never do."
        ),
    )
    template = SelectField("Template", choices=[], coerce=str)
