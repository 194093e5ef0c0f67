"""Every page, admin and public, links a favicon served by the site itself."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.web.admin_browser import logged_in_admin


@pytest.mark.parametrize("path", ["/subscribe", "/archive", "/admin/login"])
def test_public_and_login_pages_link_the_local_favicon(client: FlaskClient, path: str) -> None:
    head = client.get(path).get_data(as_text=True).split("</head>")[0]
    match = re.search(r'<link rel="icon" type="image/svg\+xml" href="(/static/favicon\.svg)">',
                      head)
    assert match, head
    icon = client.get(match.group(1))
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert b"<svg" in icon.data


def test_admin_pages_link_it_too(app: Flask) -> None:
    admin = logged_in_admin(app)
    for path in ("/admin/", "/admin/templates", "/admin/issues"):
        assert 'href="/static/favicon.svg"' in admin.get(path).get_data(as_text=True), path
