"""Composing an issue: the placeholders intros and statements may use, what a template adds,
and the warnings an editor sees before sending.

Placeholders are written ``{{ name }}`` in the Markdown of an intro or a statement. They are
replaced in the rendered HTML (and so in the text part made from it), outside code, by the
same step for the mail, the issue preview and the editor's live preview: the reader's name
becomes the per-recipient placeholder that each message fills in.
"""

from __future__ import annotations

import html as html_lib
import ipaddress
import re
from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app

from newsletter.content.markdown import html_to_text, render_markdown
from newsletter.content.media import find_by_url, media_folder
from newsletter.content.models import Issue, Template

#: name → what it becomes, as the compose form and the editor list them
BODY_PLACEHOLDERS: dict[str, str] = {
    "name": "the reader's name (“friend” when they gave none)",
    "list_name": "the names of the lists the issue goes to",
    "org_name": "who sends the newsletter",
    "archive_url": "the address of this issue on the web (as text; not inside a link)",
}
_PLACEHOLDER = re.compile(r"\{\{\s*(" + "|".join(BODY_PLACEHOLDERS) + r")\s*\}\}")
# Placeholders are not replaced inside code, where {{ name }} may be what is shown.
_CODE = re.compile(r"(<(pre|code)\b.*?</\2>)", re.IGNORECASE | re.DOTALL)
#: the longest subject that still shows whole in most inboxes' lists
SUBJECT_WARN_LENGTH = 150
#: images larger than this make mail slow and may be clipped
IMAGE_WARN_BYTES = 1024 * 1024
_GREETING = re.compile(r"^\W*(hello|hi|hey|dear|greetings|good (morning|afternoon|evening))\b",
                       re.IGNORECASE)


def expand_placeholders(html: str, values: dict[str, str]) -> str:
    """``html`` with ``{{ name }}``-style placeholders replaced (escaped), outside code.

    :param values: the text each placeholder stands for (missing ones stay as written).
    """
    parts = _CODE.split(html)
    out: list[str] = []
    index = 0
    while index < len(parts):
        part = parts[index]
        if index % 3 == 0:
            out.append(
                _PLACEHOLDER.sub(
                    lambda match: html_lib.escape(values[match.group(1)], quote=False)
                    if match.group(1) in values else match.group(0),
                    part,
                )
            )
        else:  # a code block, then the captured tag name, which is not text
            out.append(part)
            index += 1
        index += 1
    return "".join(out)


def render_body(
    source: str, values: dict[str, str], *, base_url: str | None = None
) -> tuple[str, str]:
    """A statement's or an intro's Markdown as mail shows it: (cleaned HTML, plain text).

    The one rendering step for the mail, the issue preview and the editor's live preview.
    ``base_url``: a statement's address on its site, which relative links resolve against
    (``statements.statement_url``); without it they are dropped.
    """
    html = expand_placeholders(render_markdown(source, base_url=base_url), values)
    return html, html_to_text(html)


# --- what a template adds -------------------------------------------------------------------

_FEATURES: list[tuple[str, str]] = [
    ("subscriber.name", "greets the reader by name (“Hello Ada,”): an intro that greets "
                        "again doubles the greeting"),
    ("In this issue", "lists the statements' titles at the top when there are several"),
    ("issue.preheader", "shows the preheader above the mail"),
    ("archive_url", "links to the issue on the web (“View in your browser”)"),
    ("unsubscribe_url", "ends with an unsubscribe link"),
    ("manage_url", "links to the reader's subscription settings"),
    ("list_name", "names the list the reader subscribed to"),
]


def template_features(template: Template) -> list[str]:
    """What ``template`` adds around the statements, one sentence part each."""
    source = f"{template.mjml}\n{template.text}"
    return [sentence for marker, sentence in _FEATURES if marker in source]


def template_greets(template: Template) -> bool:
    """True when the template greets the reader by name itself."""
    return "subscriber.name" in template.mjml


# --- warnings before sending ----------------------------------------------------------------


@dataclass(frozen=True)
class ComposeWarning:
    """Something to look at before sending; ``code`` names the kind for tests and styles."""

    code: str
    message: str


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href"):
            self.hrefs.append(str(attributes["href"]))
        if tag == "img" and attributes.get("src"):
            self.images.append(str(attributes["src"]))


def links_in(html: str) -> tuple[list[str], list[str]]:
    """The link targets and image sources in ``html``, in order."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.hrefs, parser.images


def _local_host(url: str) -> str | None:
    """The host when ``url`` points at localhost or a bare IP address, else None."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if not host:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host


def issue_warnings(issue: Issue, html: str, template: Template) -> list[ComposeWarning]:
    """Everything an editor should look at before ``issue`` goes out.

    :param html: the issue's rendered mail HTML.
    :param template: the template it is rendered with.
    """
    warnings: list[ComposeWarning] = []
    subject = issue.subject or ""
    if not subject.strip():
        warnings.append(ComposeWarning("subject-empty", "The subject is empty."))
    elif len(subject) > SUBJECT_WARN_LENGTH:
        warnings.append(ComposeWarning(
            "subject-long",
            f"The subject has {len(subject)} characters; inboxes cut it near "
            f"{SUBJECT_WARN_LENGTH}.",
        ))
    if not template.builtin and "unsubscribe_url" not in template.mjml:
        warnings.append(ComposeWarning(
            "no-unsubscribe",
            f"The template “{template.name}” has no unsubscribe link ({{{{ unsubscribe_url }}}}):"
            " readers must be able to leave, and mail providers reject bulk mail without one.",
        ))
    if template_greets(template) and _GREETING.match(issue.intro or ""):
        warnings.append(ComposeWarning(
            "double-greeting",
            "The template already greets the reader by name; the intro greets again.",
        ))
    hrefs, images = links_in(html)
    local = sorted({host for url in hrefs + images if (host := _local_host(url))})
    if local:
        warnings.append(ComposeWarning(
            "local-links",
            "Links or images point at " + ", ".join(local)
            + ": readers cannot reach a bare IP address or localhost (check BASE_URL).",
        ))
    for src in dict.fromkeys(images):
        size = hosted_image_size(src)
        if size is not None and size > IMAGE_WARN_BYTES:
            warnings.append(ComposeWarning(
                "large-image",
                f"The image {src} is {size / 1024 / 1024:.1f} MB; over 1 MB makes the mail slow.",
            ))
    for statement in issue.statements:
        if statement.previewed_at is None:
            warnings.append(ComposeWarning(
                "not-previewed",
                f"“{statement.title}” has never been previewed: open it to check how it reads.",
            ))
    return warnings


def hosted_image_size(url: str) -> int | None:
    """The size in bytes of an image we host (the media library, or a file in its folder);
    None for anything else: remote images are never fetched to check them."""
    item = find_by_url(url)
    if item is not None:
        return item.size
    base = f"{str(current_app.config['BASE_URL']).rstrip('/')}/media/"
    if url.startswith(base):
        name = Path(urlsplit(url).path).name
        path = media_folder() / name
        if name and path.is_file():
            return path.stat().st_size
    return None


def sender_address(sender_name: str, from_address: str) -> str:
    """``from_address`` with the issue's display name (unchanged when the name is empty):
    the address stays, so DKIM, SPF and bounces keep working."""
    name = " ".join((sender_name or "").split())
    if not name:
        return from_address
    return formataddr((name, parseaddr(from_address)[1]))
