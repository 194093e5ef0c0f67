"""Rendering an issue: Jinja into the MJML template, ``mjml2html`` once, and a text part.

STUB: interface fixed, body to be written (helper "content+mail").

Per-recipient values stay as placeholders in the rendered HTML and text and are filled per
message by ``MessageSkeleton.personalise``.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.content.models import Issue

# What the templates see as {{ subscriber.name }}, {{ unsubscribe_url }}, {{ manage_url }}
# while rendering once per issue; replaced per recipient.
PLACEHOLDERS = {
    "name": "%%NL-NAME%%",
    "unsubscribe_url": "%%NL-UNSUBSCRIBE-URL%%",
    "manage_url": "%%NL-MANAGE-URL%%",
}


@dataclass(frozen=True)
class RenderedIssue:
    subject: str
    html: str  # still holding PLACEHOLDERS
    text: str  # still holding PLACEHOLDERS


def render_issue(issue: Issue) -> RenderedIssue:
    """Render the issue once with its template.

    :raises TemplateError: the template does not render.
    """
    raise NotImplementedError


def fill_placeholders(rendered: str, *, name: str, unsubscribe_url: str, manage_url: str,
                      html: bool) -> str:
    """Replace the placeholders for one recipient (HTML-escaped when ``html``)."""
    raise NotImplementedError
