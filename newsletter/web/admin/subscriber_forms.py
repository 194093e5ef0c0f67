"""The forms of one subscriber's page and of editing a list; each carries a CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from newsletter.web.admin.forms import choices


class SubscriberEditForm(FlaskForm):
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    attributes = TextAreaField(
        "Attributes",
        validators=[Optional(), Length(max=32 * 1024)],
        description='A JSON object, e.g. {"city": "Madrid", "member": true}. Names starting '
        "with _ are the tool's own and cannot be set.",
    )


class AddToListForm(FlaskForm):
    list_slug = SelectField("List", choices=[], validators=[DataRequired()])
    status = RadioField(
        "As",
        choices=choices(
            [
                ("confirmed", "Confirmed (they agreed elsewhere; no mail is sent)"),
                ("unconfirmed", "Unconfirmed (a confirmation link is mailed to them)"),
            ]
        ),
        default="unconfirmed",
    )


class ListEditForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=5000)])
    public = BooleanField("Public: shown on the signup page")
    optin = RadioField(
        "Opt-in",
        choices=choices(
            [
                ("double", "Double: people confirm by a link mailed to them"),
                ("single", "Single: subscribed at once"),
            ]
        ),
    )
