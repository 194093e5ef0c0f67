"""Telling people from machines: link scanners, privacy proxies, prefetchers.

Mail security gateways follow every link of a message as it arrives, and some mail
providers fetch every image for everyone, whether or not the message is read. Counting
those would make every issue look read and clicked. What is filtered is still counted, on
its own, so the page can say how many were. Heuristics, each cheap and on purpose narrow:

- a ``HEAD`` request: browsers send GET; scanners often check a URL with HEAD first;
- a click within ``TRACKING_SCANNER_SECONDS`` of the send: nobody reads that fast, a
  gateway scanning the message as it arrives does;
- a user agent from the list below. Many scanners pose as a browser, which the two rules
  above catch; the agents are only read here, never stored.
"""

from __future__ import annotations

import re
from datetime import timedelta

from newsletter.delivery.analytics.models import TrackingKind

#: (pattern, what it is): agents that are never a person reading, for opens and clicks
SCANNER_AGENTS: tuple[tuple[str, str], ...] = (
    (r"proofpoint", "Proofpoint URL Defense"),
    (r"mimecast", "Mimecast"),
    (r"barracuda", "Barracuda"),
    (r"safe ?links|bingpreview", "Microsoft Safe Links / Defender"),
    (r"microsoft office existence discovery|ms-office|microsoft-?office", "Microsoft Office"),
    (r"forcepoint|symantec|mcafee|trend ?micro|sophos|ironport", "a security gateway"),
    (r"\b(?:bot|crawler|spider|scanner|preview)\b|headless", "a robot"),
    (r"^(?:curl|wget|python-requests|python-urllib|go-http-client|java|okhttp|libwww)", "a script"),
)
#: agents that fetch images for everyone, so an "open" by them says nothing
PROXY_AGENTS: tuple[tuple[str, str], ...] = (
    (r"googleimageproxy|ggpht\.com", "Google image proxy"),
    (r"yahoomailproxy", "Yahoo Mail proxy"),
    # Apple Mail Privacy Protection fetches through its own proxy with a bare agent
    (r"^mozilla/5\.0$", "Apple Mail Privacy Protection"),
)

_SCANNERS = re.compile("|".join(f"(?:{pattern})" for pattern, _ in SCANNER_AGENTS), re.I)
_PROXIES = re.compile("|".join(f"(?:{pattern})" for pattern, _ in PROXY_AGENTS), re.I)


def filter_reason(
    kind: TrackingKind,
    *,
    method: str,
    user_agent: str,
    since_send: timedelta | None,
    scanner_seconds: float,
) -> str | None:
    """Why this open or click is not counted as a person's: ``"head"``, ``"fast"``,
    ``"agent"``, or None when it is counted."""
    if method.upper() == "HEAD":
        return "head"
    agent = user_agent.strip()
    if not agent or _SCANNERS.search(agent):
        return "agent"
    if kind is TrackingKind.OPEN and _PROXIES.search(agent):
        return "agent"
    if (
        kind is TrackingKind.CLICK
        and since_send is not None
        and since_send < timedelta(seconds=scanner_seconds)
    ):
        return "fast"
    return None
