"""The web layer, by audience: public pages, admin pages, JSON API."""

from __future__ import annotations

from flask import Flask

from newsletter.ops import endpoints as ops_endpoints
from newsletter.web import admin, api, headers, media, public, track
from newsletter.web.ids import IdConverter


def register(app: Flask) -> None:
    """Register every blueprint, the error pages and the security headers."""
    headers.init_app(app)
    app.url_map.converters["int"] = IdConverter  # before the rules that use it
    app.register_blueprint(public.bp)
    app.register_blueprint(ops_endpoints.bp)
    app.register_blueprint(media.bp)  # the media library's files, at /media/<key>
    app.register_blueprint(track.bp)  # open and click tracking, at /t/…
    app.register_blueprint(admin.bp, url_prefix="/admin")
    api.register(app)  # at /api/v1, with its OpenAPI document
