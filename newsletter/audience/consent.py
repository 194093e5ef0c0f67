"""Consent that can be proven: how, when, from which page, and (as the setting allows) from
which address and browser each subscription was asked for.

Every way in records its own detail: the public form (the page it was on), the API (the
token's name), an import (the file's name and the import's label), the admin pages (the
user). ``NEWSLETTER_CONSENT_IP`` decides what is kept of the IP address and user agent:
``off`` (the default) nothing, ``truncated`` the /24 (IPv4) or /48 (IPv6) network and the
user agent, ``full`` both as they came.

The importer writes subscriptions in bulk; it takes its columns from :func:`import_consent`::

    values = {"subscriber_id": ..., "list_id": ..., "status": ..., **import_consent(name, label)}
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, has_app_context

from newsletter.audience.models import ConsentSource

PAGE_MAX = 500
DETAIL_MAX = 1000
USER_AGENT_MAX = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Consent:
    """What a request says about the consent it carries (before the IP setting applies)."""

    source: ConsentSource
    detail: str | None = None
    page: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    def columns(self) -> dict[str, Any]:
        """The ``consent_*`` column values of a subscription, with the IP setting applied."""
        return {
            "consent_source": self.source,
            "consent_detail": _line(self.detail, DETAIL_MAX),
            "consent_page": _line(self.page, PAGE_MAX),
            "consent_ip": stored_ip(self.ip),
            "consent_user_agent": stored_user_agent(self.user_agent),
        }


def import_consent(file_name: str, label: str = "") -> dict[str, Any]:
    """The ``consent_*`` column values for subscriptions written by an import.

    :param file_name: the uploaded or imported file's name (its folder is dropped).
    :param label: what the person importing said about the consent ("signed up at the
        2026 fair"); may be empty.
    """
    name = re.split(r"[\\/]", file_name or "")[-1] or "(unnamed file)"
    detail = f"import of {name}" + (f": {label.strip()}" if label and label.strip() else "")
    return Consent(ConsentSource.IMPORT, detail=detail).columns()


def api_consent(token_name: str | None, *, ip: str | None = None) -> Consent:
    """Consent asked for through the API with the token named ``token_name``."""
    return Consent(
        ConsentSource.API, detail=f"API token {token_name!r}" if token_name else "API token",
        ip=ip,
    )


def admin_consent(user_email: str | None) -> Consent:
    """Consent recorded by an admin in the admin pages."""
    return Consent(ConsentSource.ADMIN, detail=f"added by {user_email}" if user_email else None)


def form_consent(
    page: str | None, *, ip: str | None, user_agent: str | None, detail: str = "signup form"
) -> Consent:
    """Consent given on a public form, from ``page`` (see :func:`page_of`)."""
    return Consent(ConsentSource.FORM, detail=detail, page=page, ip=ip, user_agent=user_agent)


def page_of(url: str | None, our_hosts: set[str]) -> str | None:
    """The page a form was on, as kept: the path alone on our own site, another site's
    ``scheme://host/path`` (an embedded form); never the query or fragment (they can
    carry tokens and tracking ids). None for anything that is not an http(s) URL or path.
    """
    if not url:
        return None
    parts = urlsplit(url.strip())
    if not parts.netloc:
        return parts.path if parts.path.startswith("/") and not parts.scheme else None
    if parts.scheme not in {"http", "https"}:
        return None
    if parts.netloc.lower() in our_hosts:
        return parts.path or "/"
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path}"


def mode() -> str:
    """The ``CONSENT_IP`` setting: ``off``, ``truncated`` or ``full``."""
    return str(current_app.config.get("CONSENT_IP", "off")) if has_app_context() else "off"


def stored_ip(ip: str | None) -> str | None:
    """What the setting lets us keep of a client's IP address (None: nothing)."""
    setting = mode()
    if not ip or setting == "off":
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None  # not an address (a proxy's garbage): nothing worth keeping
    if setting == "full":
        return str(address)
    prefix = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network)


def stored_user_agent(user_agent: str | None) -> str | None:
    """The user agent, kept only when the setting keeps IP addresses (truncated or full)."""
    if mode() == "off":
        return None
    return _line(user_agent, USER_AGENT_MAX)


def _line(value: str | None, limit: int) -> str | None:
    cleaned = " ".join(_CONTROL.sub(" ", value or "").split())
    return cleaned[:limit] or None
