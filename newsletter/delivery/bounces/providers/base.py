"""What every provider webhook shares: the request as read, the report, the errors, and
small readers of the providers' JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from newsletter.delivery.bounces.models import BounceKind
from newsletter.errors import NewsletterError

#: the longest reason kept from a provider's report (the policy caps it again)
MAX_REASON = 1000
#: the largest webhook body read: a SendGrid batch of a few thousand events fits
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ProviderReport:
    """One bounce or complaint a provider reported, for one address.

    ``provider_message_id`` is the provider's id of the message that bounced, when it says;
    ``return_path`` the envelope sender it saw (our ``bounces+TOKEN@…`` when the return
    path was ours), so the policy can find the delivery.
    """

    email: str
    kind: BounceKind
    reason: str
    provider_message_id: str | None = None
    return_path: str | None = None


@dataclass(frozen=True)
class WebhookRequest:
    """What a provider's check reads of an HTTP request: the raw body (signatures are over
    the bytes), the headers (lower-case names) and the time it arrived (Unix seconds)."""

    body: bytes
    headers: Mapping[str, str]
    now: float

    def header(self, name: str) -> str:
        """The header's value, or ""."""
        return str(self.headers.get(name.lower(), ""))


@dataclass
class Received:
    """What one request brought: the reports, and a note for the log (a confirmed SNS
    subscription, a test event)."""

    reports: list[ProviderReport] = field(default_factory=list)
    note: str = ""
    #: replay-guard keys claimed for this request (given back if handling fails)
    claims: list[str] = field(default_factory=list)


class WebhookError(NewsletterError):
    """A webhook request that is not taken."""


class ProviderNotConfigured(WebhookError):
    """No provider of this name, or its secret is not set: the route does not exist."""

    def __init__(self, provider: str) -> None:
        super().__init__(f"no bounce webhook for {provider!r} is configured")
        self.provider = provider


class WebhookRefused(WebhookError):
    """The request failed the provider's check: a wrong or missing signature, stale, a
    replay, or credentials that do not match. ``status`` is the HTTP answer it deserves."""

    def __init__(self, provider: str, reason: str, *, status: int = 403) -> None:
        super().__init__(f"{provider} webhook refused: {reason}")
        self.provider = provider
        self.reason = reason
        self.status = status


class WebhookMalformed(WebhookError):
    """The request passed the check but its body cannot be read (a 400)."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"{provider} webhook unreadable: {reason}")
        self.provider = provider
        self.reason = reason


def clean_reason(*parts: object) -> str:
    """A one-line reason from the provider's fields (empty ones left out), capped."""
    text = " ".join(" ".join(str(part).split()) for part in parts if part not in (None, ""))
    return text[:MAX_REASON]


def clean_address(value: object) -> str | None:
    """An address as a report names it (``Name <a@b>`` or ``a@b``), lower-cased; None when
    it is not one."""
    if not isinstance(value, str):
        return None
    address = parseaddr(value)[1].strip().lower() if "<" in value else value.strip().lower()
    if "@" not in address or len(address) > 320 or any(c.isspace() for c in address):
        return None
    return address


def json_body(provider: str, raw: bytes) -> Any:
    """The body as JSON.

    :raises WebhookMalformed: it is not JSON.
    """
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise WebhookMalformed(provider, "the body is not JSON") from None


def words(value: Any) -> list[str]:
    """A comma- or space-separated setting (or a list) as its words."""
    if not value:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return [str(item).strip() for item in value if str(item).strip()]
    return [word for word in re.split(r"[,\s]+", str(value)) if word]


def text(value: Any) -> str:
    """``value`` when it is a string, else ""."""
    return value if isinstance(value, str) else ""


def mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}
