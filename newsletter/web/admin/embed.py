"""A list's sign-up page in the admin: the form to paste into another site, and its welcome mail.

The snippet is plain HTML posting to ``/subscribe/embed`` (see ``web/public.py``): the
address, an optional name, the list and the honeypot, plus our challenge script when the
challenge is on. Only double opt-in lists get one: a post from another site proves nothing
about who owns the address until the mailed link is pressed.
"""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import Length, Optional

from newsletter.audience.models import MailingList, OptIn
from newsletter.errors import NotFound
from newsletter.extensions import db
from newsletter.web.admin.blueprint import bp
from newsletter.web.signup_guard import CHALLENGE_FIELD, HONEYPOT


class WelcomeForm(FlaskForm):
    welcome_enabled = BooleanField("Send a welcome mail when someone confirms")
    welcome_subject = StringField(
        "Subject",
        validators=[Optional(), Length(max=200)],
        description="Empty: “Welcome to <list name>”, in the subscriber's language.",
    )
    welcome_text = TextAreaField(
        "Intro text",
        validators=[Optional(), Length(max=5000)],
        description="Plain text; a blank line starts a paragraph. Empty: a short built-in "
        "thank-you in the subscriber's language. A link to their preferences always follows.",
    )


def _list(slug: str) -> MailingList:
    found = db.session.scalar(select(MailingList).where(MailingList.slug == slug))
    if found is None:
        raise NotFound("list", slug)
    return found


def embed_snippet(lst: MailingList) -> str:
    """The HTML an organisation pastes into its own site to sign people up to ``lst``."""
    base = str(current_app.config["BASE_URL"])
    challenge = current_app.config["SIGNUP_CHALLENGE"] == "altcha"
    data = f' data-challenge="{base}/subscribe/challenge"' if challenge else ""
    lines = [
        f'<link rel="stylesheet" href="{base}/static/embed.css">',
        f'<form class="newsletter-signup" method="post" action="{base}/subscribe/embed"{data}>',
        '  <label>Email address <input type="email" name="email" required '
        'autocomplete="email"></label>',
        '  <label>Name (optional) <input type="text" name="name" maxlength="200" '
        'autocomplete="name"></label>',
        f'  <input type="hidden" name="list" value="{_attr(lst.slug)}">',
        '  <div class="newsletter-signup-hp" aria-hidden="true">',
        f'    <label>Leave this empty <input type="text" name="{HONEYPOT}" tabindex="-1" '
        'autocomplete="off"></label>',
        "  </div>",
    ]
    if challenge:
        lines += [
            f'  <input type="hidden" name="{CHALLENGE_FIELD}" value="">',
            '  <p class="newsletter-signup-status" data-challenge-status></p>',
        ]
    lines.append(f'  <button type="submit">Subscribe to {_attr(lst.name)}</button>')
    lines.append("</form>")
    if challenge:
        lines.append(f'<script src="{base}/static/challenge.js" defer></script>')
    return "\n".join(lines) + "\n"


def _attr(text: str) -> str:
    """Escaped for an HTML attribute or text (the snippet is shown as text, then pasted)."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace('"', "&quot;")
    )


@bp.route("/lists/<slug>/signup", methods=["GET", "POST"])
def list_signup(slug: str) -> str | Response | tuple[str, int]:
    """The embeddable form for a list and its welcome mail settings."""
    lst = _list(slug)
    form = WelcomeForm(obj=lst)
    if form.validate_on_submit():
        lst.welcome_enabled = bool(form.welcome_enabled.data)
        lst.welcome_subject = (form.welcome_subject.data or "").strip()
        lst.welcome_text = (form.welcome_text.data or "").strip()
        db.session.commit()
        flash(f"Welcome mail for “{lst.name}” saved.", "success")
        return redirect(url_for("admin.list_signup", slug=lst.slug))
    snippet = embed_snippet(lst) if lst.optin is OptIn.DOUBLE else None
    page = render_template("admin/list_signup.html", list=lst, form=form, snippet=snippet)
    return page, 422 if form.errors else 200
