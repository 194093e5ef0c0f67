"""What an API token may do: ``read``, ``write`` and ``send``, checked per route and method.

Reading (GET, HEAD) takes ``read``; changing (POST, PUT, PATCH, DELETE) takes ``write``;
the calls that put mail on its way (send, schedule, resume and retry an issue; a
transactional message) take ``send`` instead, so a token can build issues without being
able to send them.
"""

from __future__ import annotations

import re

READ = "read"
WRITE = "write"
SEND = "send"
ALL_SCOPES = (READ, WRITE, SEND)

API_PREFIX = "/api/v1"

#: routes (under the prefix, each ``<converter:name>`` as ``*``) whose POST sends mail
SEND_RULES = frozenset(
    {
        "/issues/*/send",
        "/issues/*/schedule",
        "/issues/*/resume",
        "/issues/*/retry",
        "/tx",
    }
)

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_VARIABLE = re.compile(r"<[^>]*>")


def parse_scopes(text: str) -> frozenset[str]:
    """The scopes in a token's space-separated ``scopes`` column (unknown words ignored)."""
    return frozenset(text.split()) & frozenset(ALL_SCOPES)


def normalise(scopes: list[str] | tuple[str, ...] | frozenset[str]) -> str:
    """Scopes as stored: known ones only, each once, in the order read, write, send.

    :raises ValueError: an unknown scope, or none at all.
    """
    unknown = set(scopes) - set(ALL_SCOPES)
    if unknown:
        raise ValueError(f"unknown scope {sorted(unknown)[0]!r}; use {', '.join(ALL_SCOPES)}")
    if not scopes:
        raise ValueError(f"a token needs at least one scope of {', '.join(ALL_SCOPES)}")
    return " ".join(scope for scope in ALL_SCOPES if scope in scopes)


def route_key(rule: str) -> str:
    """A URL rule as ``SEND_RULES`` names it: without the prefix, variables as ``*``."""
    path = rule[len(API_PREFIX) :] if rule.startswith(API_PREFIX) else rule
    return _VARIABLE.sub("*", path)


def required_scope(rule: str, method: str) -> str:
    """The scope a call to ``rule`` (a Flask URL rule string) with ``method`` needs."""
    method = method.upper()
    if method in _READ_METHODS:
        return READ
    if method == "POST" and route_key(rule) in SEND_RULES:
        return SEND
    return WRITE


def missing_scope(granted: str, rule: str | None, method: str) -> str | None:
    """The scope the call lacks, given a token's ``scopes`` column; None when it may go on.

    ``rule`` is None when routing failed (a 404 or a redirect follows): nothing to check.
    """
    if rule is None:
        return None
    needed = required_scope(rule, method)
    return None if needed in parse_scopes(granted) else needed
