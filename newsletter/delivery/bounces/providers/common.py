"""Small readers shared by the provider modules."""

from __future__ import annotations

import json
import re
from typing import Any

from newsletter.delivery.bounces.providers import WebhookMalformed


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
