"""The media library's files, served at a stable URL that mail refers to: ``/media/<key>``.

Only files the library stored are served (the key is looked up), with their own content
type, ``nosniff`` and a long cache: a key is never reused for another image.
"""

from __future__ import annotations

from flask import Blueprint, abort, send_from_directory
from sqlalchemy import select
from werkzeug.wrappers import Response

from newsletter.content.media import MediaItem, MediaStorage, media_folder
from newsletter.extensions import db

bp = Blueprint("media", __name__)


@bp.get("/media/<key>")
def media_file(key: str) -> Response:
    """One image of the library (404 for anything else)."""
    item = db.session.scalar(select(MediaItem).where(MediaItem.key == key))
    if item is None or item.storage is not MediaStorage.LOCAL:
        abort(404)
    response = send_from_directory(media_folder(), item.key, mimetype=item.content_type,
                                   max_age=365 * 24 * 3600)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
