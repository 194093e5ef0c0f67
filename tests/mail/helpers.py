"""Helpers for the mail tests: a MIME skeleton with the hard cases in it (= signs, a dot
alone on a line, trailing spaces, long lines, non-ASCII) and recipients for it."""

from __future__ import annotations

from newsletter.mail.message import ListInfo, MessageSkeleton, Recipient
from newsletter.mail.render import PLACEHOLDERS

NAME, UNSUB, MANAGE = PLACEHOLDERS["name"], PLACEHOLDERS["unsubscribe_url"], PLACEHOLDERS[
    "manage_url"
]
HTML = (
    "<!doctype html><html><head><title>Weekly</title></head><body>"
    f"<p>Hello {NAME},</p>"
    + "<p>" + "A long paragraph with = signs and ünïcödé — " * 40 + "</p>\n"
    + f'<a href="{UNSUB}">Unsubscribe</a> <a href="{MANAGE}">Manage</a>\n'
    + ".\nFrom the line start\n  trailing spaces   \n</body></html>"
)
TEXT = (
    f"Hello {NAME},\n\n" + "Words and more words, = and ü. " * 20 + "\n\n"
    f"Unsubscribe: {UNSUB}\nManage your subscription: {MANAGE}\n.\nend with space "
)
LIST_INFO = ListInfo("news.example.org", "mailto:unsubscribe@example.org", "MACC News")


def skeleton(subject: str = "Weekly news", **overrides: str) -> MessageSkeleton:
    """A skeleton of ``HTML`` and ``TEXT``; ``overrides`` replace its html, text or From."""
    return MessageSkeleton(
        subject=subject,
        html=overrides.get("html", HTML),
        text=overrides.get("text", TEXT),
        from_address=overrides.get("from_address", "Example News <news@example.org>"),
        list_info=LIST_INFO,
    )


def recipient(number: int = 1, **fields: str) -> Recipient:
    """Reader ``number``; ``fields`` replace any of its values."""
    return Recipient(
        email=fields.get("email", f"reader{number}@example.com"),
        name=fields.get("name", f"Reader {number}"),
        unsubscribe_url=fields.get(
            "unsubscribe_url", f"https://news.example.org/unsubscribe/tok{number}?a=1&b=2"
        ),
        manage_url=fields.get("manage_url", f"https://news.example.org/manage/m{number}"),
        message_id=fields.get("message_id", f"id{number}@example.org"),
    )
