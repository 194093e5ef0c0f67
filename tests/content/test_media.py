"""The media library: images checked by their content, re-encoded without metadata, stored
in the instance folder (served at /media/<key>) or in an S3 bucket (a real local S3 server,
moto's), and referred to by absolute URLs in mail."""

from __future__ import annotations

import io
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from newsletter.content import media
from newsletter.content.compose import issue_warnings
from newsletter.content.issues import create_issue
from newsletter.content.media import MediaStorage
from newsletter.content.templates import default_template
from newsletter.errors import ValidationError
from newsletter.extensions import db
from newsletter.mail.render import preview_issue
from tests.factories import make_list, make_statement
from tests.helpers import free_port, require_service

BUCKET = "newsletter-media"


def image_bytes(kind: str = "PNG", size: tuple[int, int] = (40, 30), **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 30)).save(out, kind, **save)
    return out.getvalue()


def jpeg_with_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x0131] = "PhoneOS 1.2"  # Software
    return image_bytes("JPEG", exif=exif.tobytes())


def test_a_png_is_stored_in_the_instance_folder_and_served_at_its_absolute_url(
    app: Flask,
) -> None:
    item = media.upload(image_bytes(), "poster.png")
    assert item.storage is MediaStorage.LOCAL
    assert (item.width, item.height, item.content_type) == (40, 30, "image/png")
    assert item.url == f"https://news.example.org/media/{item.key}"
    stored = Path(app.instance_path) / "media" / item.key
    assert stored.is_file() and stored.stat().st_size == item.size
    assert item.markdown == f"![poster]({item.url})"

    response = app.test_client().get(f"/media/{item.key}")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.data == stored.read_bytes()
    assert app.test_client().get("/media/not-a-key.png").status_code == 404


def test_exif_is_stripped_by_re_encoding(app: Flask) -> None:
    original = jpeg_with_exif()
    assert Image.open(io.BytesIO(original)).getexif()  # the test's photo has it
    item = media.upload(original, "photo.jpg")
    stored = (Path(app.instance_path) / "media" / item.key).read_bytes()
    assert not Image.open(io.BytesIO(stored)).getexif()
    assert b"SpyCam" not in stored


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<?php echo 'hi'; ?>" + b"\x00" * 100, "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"broken" * 20, "not an image"),
        (image_bytes("BMP"), "not allowed"),
        (image_bytes("TIFF"), "not allowed"),
    ],
    ids=["php-named-png", "truncated-png", "bmp", "tiff"],
)
def test_what_is_not_an_allowed_image_is_refused_whatever_its_name(
    app: Flask, data: bytes, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason) as caught:
        media.upload(data, "innocent.png")
    assert caught.value.field == "file"
    assert media.list_media() == []
    assert not (Path(app.instance_path) / "media").exists() or not any(
        (Path(app.instance_path) / "media").iterdir()
    )


def test_an_image_over_the_byte_or_pixel_cap_is_refused(app: Flask) -> None:
    app.config["MEDIA_MAX_BYTES"] = 2000
    with pytest.raises(ValidationError, match="at most 2,000"):
        media.upload(image_bytes("PNG", (300, 300), compress_level=0), "big.png")
    app.config["MEDIA_MAX_BYTES"] = 5 * 1024 * 1024
    app.config["MEDIA_MAX_PIXELS"] = 100
    with pytest.raises(ValidationError, match="at most 100 on a side"):
        media.upload(image_bytes("PNG", (101, 10)), "wide.png")


def test_mail_refers_to_uploaded_images_by_absolute_url(app: Flask) -> None:
    make_list("news")
    item = media.upload(image_bytes("GIF"), "chart.gif")
    statement = make_statement(body=f"Look:\n\n{item.markdown}\n")
    issue = create_issue(subject="S", statement_ids=[statement.id], list_slugs=["news"])
    html, text = preview_issue(issue)
    assert f'src="{item.url}"' in html
    assert item.url.startswith("https://news.example.org/media/")
    assert item.url in text


def test_an_image_we_host_over_1_mb_is_warned_about_and_a_remote_one_is_not_fetched(
    app: Flask,
) -> None:
    make_list("news")
    item = media.upload(image_bytes(), "small.png")
    item.size = 3 * 1024 * 1024  # as if a large photo: the check reads what we stored
    db.session.commit()
    statement = make_statement(
        body=f"{item.markdown}\n\n![far](https://images.example.net/huge.jpg)\n"
    )
    issue = create_issue(subject="S", statement_ids=[statement.id], list_slugs=["news"])
    html = preview_issue(issue)[0]
    large = [w for w in issue_warnings(issue, html, default_template()) if w.code == "large-image"]
    assert len(large) == 1 and item.url in large[0].message  # the network guard would fail a fetch


@pytest.fixture
def s3_server() -> Iterator[str]:
    """moto's S3 server, for real over HTTP on loopback."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        require_service("moto server", f"{error}; pip install 'moto[server]'")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def app_config(app_config: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    if "s3_server" not in request.fixturenames:
        return app_config
    endpoint = request.getfixturevalue("s3_server")
    return {
        **app_config,
        "MEDIA_S3_BUCKET": BUCKET,
        "MEDIA_S3_ENDPOINT": endpoint,
        "MEDIA_S3_ACCESS_KEY": "testing",
        "MEDIA_S3_SECRET_KEY": "testing",
        "MEDIA_S3_PUBLIC_URL": f"{endpoint}/{BUCKET}",
    }


def test_with_a_bucket_configured_images_go_to_s3_and_mail_uses_its_public_url(
    app: Flask, s3_server: str
) -> None:
    backend = media.storage_backend()
    assert isinstance(backend, media.S3Storage)
    backend.client.create_bucket(Bucket=BUCKET)

    item = media.upload(jpeg_with_exif(), "photo.jpg")
    assert item.storage is MediaStorage.S3
    assert item.url == f"{s3_server}/{BUCKET}/{item.key}"
    assert not (Path(app.instance_path) / "media").exists()  # nothing kept locally

    with urllib.request.urlopen(item.url, timeout=10) as response:  # noqa: S310 - loopback
        body = response.read()
        assert response.headers["Content-Type"] == "image/jpeg"
    assert body == backend.client.get_object(Bucket=BUCKET, Key=item.key)["Body"].read()
    assert not Image.open(io.BytesIO(body)).getexif()

    make_list("news")
    statement = make_statement(body=item.markdown)
    issue = create_issue(subject="S", statement_ids=[statement.id], list_slugs=["news"])
    assert f'src="{item.url}"' in preview_issue(issue)[0]

    media.delete_media(item.id)
    listed = backend.client.list_objects_v2(Bucket=BUCKET)
    assert listed.get("KeyCount", 0) == 0
