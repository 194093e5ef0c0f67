"""DKIM settings and names: what ``configure`` and the send ask before any key is read.

Kept apart from ``mail/dkim.py`` so that a process that signs nothing never loads dkimpy
and ``cryptography`` (about 12 MB of every process's memory, measured): the send imports
the signer only when the From domain has a key folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from newsletter.errors import ConfigError

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?)*$")
_OFF = {"off", "false", "no", "0"}
_ON = {"on", "true", "yes", "1"}


def complete_settings(config: dict[str, Any], instance_path: str) -> None:
    """Check ``DKIM`` (on/off) and fill in ``DKIM_KEY_DIR``; called by ``configure``.

    :raises ConfigError: ``NEWSLETTER_DKIM`` is neither on nor off.
    """
    config["DKIM"] = dkim_enabled(config)
    key_dir = config.get("DKIM_KEY_DIR") or os.path.join(instance_path, "dkim")
    config["DKIM_KEY_DIR"] = str(Path(key_dir).resolve())


def dkim_enabled(config: Mapping[str, Any]) -> bool:
    """Whether ``DKIM`` says to sign (default on: sign whenever a key exists).

    :raises ConfigError: a value that is neither on nor off.
    """
    value = config.get("DKIM", True)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise ConfigError("NEWSLETTER_DKIM", f"{value!r} is neither on nor off")


def normalise_domain(domain: str) -> str:
    """The domain as DKIM's d= and the key folder name it: lower case, IDN as ASCII.

    :raises ValueError: not a domain name (also keeps ``..`` and ``/`` out of paths).
    """
    domain = domain.strip().rstrip(".").lower()
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{domain!r} is not a domain name") from None
    if not _NAME.match(domain):
        raise ValueError(f"{domain!r} is not a domain name")
    return domain


def check_selector(selector: str) -> str:
    """The selector, if it can be a DNS name (``s._domainkey.domain``).

    :raises ValueError: it cannot.
    """
    selector = selector.strip().lower()
    if not _NAME.match(selector):
        raise ValueError(f"{selector!r} is not a valid selector (letters, digits, - and .)")
    return selector


def sending_domain(from_address: str) -> str | None:
    """The domain of a From address (``Name <user@domain>``), or None without one."""
    _, address = parseaddr(from_address)
    domain = address.rpartition("@")[2]
    try:
        return normalise_domain(domain) if domain else None
    except ValueError:
        return None



def key_folder(config: Mapping[str, Any], from_address: str) -> Path | None:
    """The folder whose keys would sign mail from ``from_address``, if DKIM is on and the
    folder exists; None otherwise (nothing to sign with)."""
    key_dir = config.get("DKIM_KEY_DIR")
    domain = sending_domain(from_address)
    if not dkim_enabled(config) or not key_dir or domain is None:
        return None
    folder = Path(key_dir) / domain
    return folder if folder.is_dir() else None
