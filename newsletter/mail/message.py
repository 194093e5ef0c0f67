"""MIME messages: a skeleton built once per issue, personalised per recipient as bytes.

STUB: interface fixed, body to be written (helper "content+mail").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str
    unsubscribe_url: str  # https URL; also the RFC 8058 one-click POST target
    manage_url: str
    message_id: str  # without angle brackets, on the From domain


@dataclass(frozen=True)
class ListInfo:
    list_id: str  # List-Id value, e.g. "News <news.example.org>"
    unsubscribe_mailto: str  # mailto: URL for List-Unsubscribe


class MessageSkeleton:
    """The parts of an issue's message that are the same for everyone, prepared once."""

    def __init__(
        self, *, subject: str, html: str, text: str, from_address: str, list_info: ListInfo
    ) -> None:
        raise NotImplementedError

    def personalise(self, recipient: Recipient) -> bytes:
        """The whole message for one recipient, ready for SMTP DATA."""
        raise NotImplementedError


def make_message_id(from_address: str) -> str:
    """A new unique Message-ID (without brackets) on the From address's domain."""
    raise NotImplementedError


def build_simple_message(
    *, to: str, subject: str, text: str, html: str | None, from_address: str
) -> bytes:
    """A one-off message (confirmations, transactional mail), with Date, Message-ID,
    Auto-Submitted and a text part."""
    raise NotImplementedError
