"""Test sends ("proofs"): an issue as readers will get it, mailed to chosen editors.

A proof goes through the one door for mail that is not an issue
(``transactional.queue_message``), so it is signed and relayed like the rest, and never
touches the issue's deliveries, counts or status. It is marked twice: ``[Test]`` before the
subject and an ``X-Newsletter-Test`` header naming the issue.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from newsletter.auth.models import Role, User
from newsletter.content.compose import sender_address
from newsletter.content.issues import get_issue
from newsletter.delivery.transactional import TransactionalMessage, queue_message
from newsletter.errors import ValidationError
from newsletter.extensions import db
from newsletter.mail.render import fill_placeholders, render_issue

SUBJECT_PREFIX = "[Test] "
TEST_HEADER = "X-Newsletter-Test"
#: who may receive a proof: the people who write and check issues
PROOF_ROLES = (Role.ADMIN, Role.EDITOR)


def proof_recipients() -> list[User]:
    """The active editors and admins, who may be sent a proof."""
    query = (
        select(User)
        .where(User.active.is_(True), User.role.in_(PROOF_ROLES))
        .order_by(User.email)
    )
    return list(db.session.scalars(query))


def send_proof(issue_id: int, user_ids: list[int]) -> list[TransactionalMessage]:
    """Queue the issue, rendered as it will be sent, to each chosen editor.

    :raises ValidationError: nobody chosen, or someone who may not receive proofs.
    :raises TemplateError: the issue does not render.
    """
    issue = get_issue(issue_id)
    allowed = {user.id: user for user in proof_recipients()}
    chosen = list(dict.fromkeys(int(number) for number in user_ids))
    if not chosen:
        raise ValidationError("Choose at least one editor to send the test to.", field="to")
    strangers = [number for number in chosen if number not in allowed]
    if strangers:
        raise ValidationError("Tests go only to active editors and admins.", field="to")
    rendered = render_issue(issue)
    base_url = str(current_app.config["BASE_URL"]).rstrip("/")
    # A proof's links must not unsubscribe or expose any reader: they lead to the signup page.
    sample = f"{base_url}/subscribe"
    from_address = sender_address(issue.sender_name, str(current_app.config["FROM_ADDRESS"]))
    rows = []
    for number in chosen:
        user = allowed[number]
        values = {"name": "", "unsubscribe_url": sample, "manage_url": sample}
        rows.append(
            queue_message(
                to=user.email,
                subject=SUBJECT_PREFIX + rendered.subject,
                text=fill_placeholders(rendered.text, html=False, **values),
                html=fill_placeholders(rendered.html, html=True, **values),
                from_address=from_address,
                headers={TEST_HEADER: f"issue {issue.id}"},
            )
        )
    return rows
