"""An archived issue as a page of the site, and the proxy for its remote images.

The page is not the mail: it shows the issue's intro and statements inside the public
layout (header, a way back to the archive), with no "you receive this because…" footer,
no unsubscribe or preferences link and no "view in your browser". Remote images are linked
or proxied (``content/remote_images.py``), so the page makes no request to another site.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, current_app, url_for
from markupsafe import Markup

from newsletter.content.archive import contents_as_sent
from newsletter.content.markdown import render_markdown
from newsletter.content.models import Issue
from newsletter.content.remote_images import (
    RemoteImageError,
    check_signature,
    fetch_image,
    rewrite_images,
)
from newsletter.errors import NotFound
from newsletter.mail.render import format_date

#: how long browsers and proxies may keep a proxied image
IMAGE_CACHE_SECONDS = 24 * 3600


def _safe_html(markdown: str) -> Markup:
    """Cleaned HTML (``render_markdown`` cleans with nh3) with its remote images handled."""
    config = current_app.config
    html = rewrite_images(
        render_markdown(markdown),
        mode=str(config["ARCHIVE_REMOTE_IMAGES"]),
        base_url=str(config["BASE_URL"]),
        proxy_path=url_for("public.archive_image"),
        secret_key=str(config["SECRET_KEY"]),
    )
    return Markup(html)  # noqa: S704 - cleaned by nh3; the rewrite escapes what it writes


def contents(issue: Issue) -> dict[str, Any]:
    """What ``public/archive_issue.html`` shows of the issue: its contents as sent (kept
    when sending started), or as they are now for an issue sent before they were kept."""
    kept = issue.archived_contents or contents_as_sent(issue)
    intro = str(kept.get("intro") or "")
    return {
        "intro_html": _safe_html(intro) if intro.strip() else None,
        "statements": [
            {
                "title": statement["title"],
                "slug": statement["slug"],
                "author": statement["author"],
                "date": format_date(_date(statement.get("date"))),
                "html": _safe_html(statement["body"]),
            }
            for statement in kept.get("statements", [])
        ],
    }


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def proxy_image(url: str, given_signature: str) -> Response:
    """The remote image at ``url`` if the signature is ours, else a 404.

    :raises NotFound: a bad signature, or an image the proxy refuses (the reason is logged).
    """
    config = current_app.config
    if not url or not check_signature(url, given_signature, str(config["SECRET_KEY"])):
        raise NotFound("image", url)
    try:
        image = fetch_image(
            url,
            max_bytes=int(config["ARCHIVE_IMAGE_MAX_BYTES"]),
            timeout=float(config["ARCHIVE_IMAGE_TIMEOUT"]),
            allow_private=bool(config["ARCHIVE_IMAGE_ALLOW_PRIVATE"]),
        )
    except RemoteImageError as error:
        current_app.logger.info("archive image refused: %s", error.message)
        raise NotFound("image", url) from None
    response = Response(image.body, mimetype=image.content_type)
    response.headers["Cache-Control"] = f"public, max-age={IMAGE_CACHE_SECONDS}"
    response.headers["Content-Disposition"] = "inline"
    return response
