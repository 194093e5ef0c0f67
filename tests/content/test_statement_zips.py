"""Zip files of Jekyll posts: imported from the CLI, the admin upload and the API; refused
whole, with nothing imported, when a path escapes or the contents unpack past the caps."""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from newsletter.content.archives import Limits, UnsafeArchive, read_zip
from newsletter.content.models import Statement
from newsletter.content.statements import import_zip
from newsletter.extensions import db
from tests.helpers import csrf_token_from
from tests.web.admin_browser import logged_in_admin
from tests.web.api_client import Api, assert_error

DATA = Path(__file__).resolve().parent.parent / "data"
SITE_DIR = DATA / "jekyll-site"
POST = "---\ntitle: {title}\n---\nText of {title}.\n"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    app_config["SITE_URL"] = "https://tenants.example.org/union"
    app_config["IMPORT_ZIP_MAX_BYTES"] = 64 * 1024
    app_config["IMPORT_ZIP_MAX_FILE_BYTES"] = 16 * 1024
    app_config["IMPORT_ZIP_MAX_FILES"] = 50
    yield app_config


def site_zip() -> bytes:
    """The fixture site as a zip, under a top folder as GitHub's downloads have it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(SITE_DIR.rglob("*")):
            if path.is_file():
                archive.write(path, f"site-main/{path.relative_to(SITE_DIR).as_posix()}")
    return buffer.getvalue()


def zip_of(entries: dict[str, bytes | str], **info: Any) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            entry = zipfile.ZipInfo(name, date_time=(2021, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            for key, value in info.get(name, {}).items():
                setattr(entry, key, value)
            archive.writestr(entry, content)
    return buffer.getvalue()


def count() -> int:
    db.session.remove()
    return int(db.session.scalar(select(func.count()).select_from(Statement)) or 0)


GOOD = {"_posts/2021-01-01-good.md": POST.format(title="Good")}


def lying_sizes(data: bytes, claimed: int) -> bytes:
    """The zip with every entry's uncompressed size in its headers replaced by ``claimed``."""
    patched = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = patched.find(signature)
        while start != -1:
            patched[start + offset : start + offset + 4] = claimed.to_bytes(4, "little")
            start = patched.find(signature, start + 4)
    return bytes(patched)


UNSAFE = {
    "dot-dot": (zip_of({**GOOD, "../evil.md": POST.format(title="Evil")}), "outside"),
    "nested dot-dot": (zip_of({**GOOD, "_posts/../../x.md": "x"}), "outside"),
    "absolute": (zip_of({**GOOD, "/etc/x.md": POST.format(title="Abs")}), "absolute"),
    "drive": (zip_of({**GOOD, "C:/x.md": POST.format(title="Abs")}), "absolute"),
    "backslashes": (zip_of({**GOOD, "..\\x.md": POST.format(title="Abs")}), "outside"),
    "symlink": (
        zip_of(
            {**GOOD, "_posts/2021-01-02-link.md": "/etc/passwd"},
            **{"_posts/2021-01-02-link.md": {
                "external_attr": (stat.S_IFLNK | 0o777) << 16, "create_system": 3
            }},
        ),
        "symbolic link",
    ),
    "one file past the cap (header)": (
        zip_of({**GOOD, "_posts/2021-01-02-big.md": "---\ntitle: Big\n---\n" + "a" * 20_000}),
        "cap per file",
    ),
    "all files past the cap (header)": (
        zip_of({f"_posts/2021-01-{n:02d}-p.md": "---\ntitle: P\n---\n" + "b" * 15_000
                for n in range(1, 6)}),
        "cap for a zip",
    ),
    "too many entries": (zip_of({f"img/{n}.png": b"x" for n in range(60)} | GOOD), "entries"),
    "headers that lie": (
        lying_sizes(zip_of({"_posts/2021-01-02-bomb.md": "---\ntitle: B\n---\n" + "c" * 60_000}),
                    100),
        "cannot be read",
    ),
    "not a zip": (b"PK\x03\x04 not really", "not a zip"),
}


# --- reading --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_an_unsafe_zip_is_refused_whole_with_the_reason(app: Flask, case: str) -> None:
    data, reason = UNSAFE[case]
    with pytest.raises(UnsafeArchive) as caught:
        import_zip(io.BytesIO(data), "site.zip")
    assert reason in caught.value.reason
    assert "nothing was imported" in caught.value.message
    assert count() == 0


def test_the_caps_also_hold_while_reading() -> None:
    # headers that claim less than the truth: the bytes read are what count
    data = zip_of({"_posts/2021-01-02-a.md": "x" * 5000, "_posts/2021-01-03-b.md": "y" * 5000})
    with pytest.raises(UnsafeArchive) as caught:
        read_zip(io.BytesIO(lying_sizes(data, 10)), "z", limits=Limits(8000, 16_000, 10))
    assert "cannot be read" in caught.value.reason or "cap" in caught.value.reason


def test_a_zip_of_a_site_imports_its_posts_only_with_its_includes(app: Flask) -> None:
    report = import_zip(io.BytesIO(site_zip()), "site.zip")
    assert report.errors == []
    assert sorted(s.slug for s in report.created) == ["liquid-footnotes-and-tables", "strike-diary"]
    post = db.session.scalars(
        select(Statement).where(Statement.slug == "liquid-footnotes-and-tables")
    ).one()
    assert "<strong>Join the next assembly</strong>" in post.body  # from _includes/


# --- the three doors ------------------------------------------------------------------------


def test_the_cli_imports_a_zip_and_says_what_each_post_did(
    runner: FlaskCliRunner, tmp_path: Path
) -> None:
    archive = tmp_path / "site.zip"
    archive.write_bytes(site_zip())
    result = runner.invoke(args=["statements", "import", str(archive)])
    assert result.exit_code == 0, result.output
    assert "created  strike-diary  Strike diary" in result.output
    assert "2 created, 0 updated, 0 errors" in result.output
    assert "warning" in result.output and "'seo'" in result.output

    again = runner.invoke(args=["statements", "import", str(archive)])
    assert "unchanged strike-diary" in again.output
    assert "0 created, 2 updated, 0 errors" in again.output


def test_the_cli_refuses_an_unsafe_zip_and_imports_nothing_else_either(
    runner: FlaskCliRunner, tmp_path: Path
) -> None:
    good = tmp_path / "2021-01-05-fine.md"
    good.write_text(POST.format(title="Fine"))
    archive = tmp_path / "evil.zip"
    archive.write_bytes(UNSAFE["dot-dot"][0])
    result = runner.invoke(args=["statements", "import", str(good), str(archive)])
    assert result.exit_code == 1
    assert "points outside the zip's folder; nothing was imported" in result.output
    assert count() == 0


def test_the_admin_upload_takes_a_zip_and_lists_what_it_did(app: Flask) -> None:
    client = logged_in_admin(app)
    token = csrf_token_from(client.get("/admin/statements").get_data(as_text=True))
    response = client.post(
        "/admin/statements",
        data={"csrf_token": token, "file": (io.BytesIO(site_zip()), "site.zip")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302 and response.headers["Location"] == "/admin/statements"
    page = client.get("/admin/statements").get_data(as_text=True)
    assert "Imported the zip: 2 created, 0 updated, 0 errors." in page
    assert "created strike-diary" in page and "Strike diary" in page
    assert count() == 2


def test_the_admin_upload_shows_a_single_posts_changes(app: Flask) -> None:
    client = logged_in_admin(app)

    def upload(text: str) -> str:
        token = csrf_token_from(client.get("/admin/statements").get_data(as_text=True))
        response = client.post(
            "/admin/statements",
            data={"csrf_token": token, "file": (io.BytesIO(text.encode()), "2021-01-01-one.md")},
            content_type="multipart/form-data", follow_redirects=True,
        )  # fmt: skip
        return response.get_data(as_text=True)

    assert "imported" in upload(POST.format(title="One"))
    page = upload("---\ntitle: One\ntags: [x]\n---\nNew text.\n")
    assert "updated: body, front matter (tags)." in page


def test_the_admin_upload_refuses_an_unsafe_zip(app: Flask) -> None:
    client = logged_in_admin(app)
    token = csrf_token_from(client.get("/admin/statements").get_data(as_text=True))
    response = client.post(
        "/admin/statements",
        data={"csrf_token": token, "file": (io.BytesIO(UNSAFE["absolute"][0]), "evil.zip")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "has an absolute path; nothing was imported" in response.get_data(as_text=True)
    assert count() == 0


@pytest.fixture
def api(app: Flask) -> Api:
    from newsletter.auth.services import create_api_token, create_user

    create_user("robot@example.org", "a long enough password 123")
    return Api(app.test_client(), create_api_token("robot@example.org"))


def test_the_api_takes_a_zip_and_answers_what_each_post_did(api: Api) -> None:
    response = api.client.post(
        "/api/v1/statements", data=site_zip(), content_type="application/zip",
        headers=api.headers,
    )  # fmt: skip
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["created"], body["updated"], body["errors"]) == (2, 0, [])
    slugs = sorted(item["slug"] for item in body["items"])
    assert slugs == ["liquid-footnotes-and-tables", "strike-diary"]
    item = next(i for i in body["items"] if i["slug"] == "liquid-footnotes-and-tables")
    assert "<table>" in item["html"] and "{%" not in item["html"]
    assert any("'seo'" in warning for warning in item["warnings"])


def test_the_api_says_what_a_markdown_reimport_changed(api: Api) -> None:
    def send(text: str) -> Any:
        return api.client.post(
            "/api/v1/statements?filename=2021-01-01-one.md", data=text,
            content_type="text/markdown", headers=api.headers,
        )  # fmt: skip

    assert send(POST.format(title="One")).status_code == 201
    response = send(POST.format(title="Two"))
    assert response.status_code == 200
    assert response.get_json()["changes"] == ["title", "body"]


def test_the_api_refuses_an_unsafe_zip_with_a_422(api: Api) -> None:
    response = api.client.post(
        "/api/v1/statements", data=UNSAFE["symlink"][0], content_type="application/zip",
        headers=api.headers,
    )  # fmt: skip
    assert "symbolic link" in assert_error(response, 422, "file")
    assert count() == 0


def test_the_api_keeps_its_own_cap_for_markdown(api: Api, app: Flask) -> None:
    big = POST.format(title="Big") + "x" * (app.config["API_MAX_CONTENT_LENGTH"] + 10)
    response = api.client.post(
        "/api/v1/statements", data=big, content_type="text/markdown", headers=api.headers
    )
    assert response.status_code == 413
