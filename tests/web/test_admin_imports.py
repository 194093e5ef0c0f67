"""Importing from the admin pages: upload, a worker imports, the page follows, the report
downloads; a job whose worker died resumes without doing anything twice."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from newsletter.audience import import_jobs, importer
from newsletter.audience.importer import ImportOptions
from newsletter.audience.models import (
    ImportJob,
    ImportJobStatus,
    ImportMode,
    OptIn,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.factories import make_list, make_subscriber
from tests.smtp import CapturingSMTPServer
from tests.web.admin_browser import logged_in_admin, token_for

PAGE = "/admin/subscribers/import"


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser logged in as an admin."""
    return logged_in_admin(app)


def upload(client: FlaskClient, body: bytes, name: str = "people.csv", **fields: str) -> Any:
    data: dict[str, Any] = {"csrf_token": token_for(client, PAGE),
                            "file": (io.BytesIO(body), name), "list_slug": "news",
                            "mode": "subscribe", "overwrite": "overwrite"}
    data.update(fields)
    return client.post(PAGE, data=data, content_type="multipart/form-data")


def test_an_upload_is_imported_in_the_background_with_progress_and_a_report(
    client: FlaskClient, app: Flask, run_jobs: Callable[[], None]
) -> None:
    make_list("news", optin=OptIn.SINGLE)
    make_subscriber("known@example.org", name="Known")
    body = (
        b"email,name,city\nnew@example.org,New One,Berlin\nknown@example.org,Known Again,\n"
        b"=HYPERLINK(\"http://evil.example\"),Bad,\n"
    )
    response = upload(client, body)
    assert response.status_code == 302
    job_url = response.headers["Location"]
    job = db.session.scalars(select(ImportJob)).one()
    assert job_url.endswith(f"/admin/subscribers/imports/{job.id}")
    # The upload is kept in the instance folder, for the worker.
    assert job.file_path.startswith(app.instance_path)
    waiting = client.get(job_url).get_data(as_text=True)
    assert 'data-active="true"' in waiting and "import.js" in waiting
    assert "<script>" not in waiting  # no inline script (CSP)

    run_jobs()

    state = client.get(f"{job_url}/progress").get_json()
    assert state["status"] == "done" and state["finished"] is True
    assert (state["rows_done"], state["imported"], state["bad"], state["percent"]) == (3, 2, 1, 100)
    assert state["counts"]["created"] == 1 and state["counts"]["updated"] == 1
    page = client.get(job_url).get_data(as_text=True)  # also what a reload without JS shows
    assert "Import finished" in page and 'data-active="false"' in page
    assert "/report.csv" in page
    report = client.get(f"{job_url}/report.csv")
    assert report.status_code == 200 and report.mimetype == "text/csv"
    assert "attachment" in report.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(report.get_data(as_text=True))))
    assert rows[0] == import_jobs.REPORT_HEADER
    assert rows[1][0] == "4" and "invalid email address" in rows[1][1]
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert rows[1][2].startswith("'=HYPERLINK")
    emails = set(db.session.scalars(select(Subscriber.email)))
    assert emails == {"new@example.org", "known@example.org"}
    assert client.get(PAGE).get_data(as_text=True).count("people.csv") == 1  # recent imports


def test_a_file_that_is_not_csv_is_refused_at_upload(client: FlaskClient) -> None:
    make_list("news")
    response = upload(client, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "x.csv")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'class="field-error"' in page and "not a CSV or TSV file" in page
    response = upload(client, b"name\nAda\n")
    assert response.status_code == 422 and "no address column" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_subscribing_needs_a_list(client: FlaskClient) -> None:
    make_list("news")
    response = upload(client, b"email\nada@example.org\n", list_slug="")
    assert response.status_code == 422
    assert "choose the list" in response.get_data(as_text=True)


def test_the_form_takes_mode_keep_encoding_and_delimiter(
    client: FlaskClient, run_jobs: Callable[[], None]
) -> None:
    make_list("news")
    make_subscriber("ada@example.org", name="Ada")
    body = "email;name\nada@example.org;Ada King\nzoe@example.org;Zoë\n".encode("cp1252")
    assert upload(client, body, overwrite="keep", encoding="cp1252", delimiter=";",
                  mode="subscribe").status_code == 302
    run_jobs()
    names = dict(db.session.execute(select(Subscriber.email, Subscriber.name)).all())
    assert names == {"ada@example.org": "Ada", "zoe@example.org": "Zoë"}


def test_the_progress_of_another_page_is_json_even_logged_out(app: Flask) -> None:
    response = app.test_client().get("/admin/subscribers/imports/1/progress")
    assert response.status_code == 401 and response.is_json


class Crash(BaseException):
    """A worker dying: nothing below the importer catches it, nothing records it."""


def test_a_job_whose_worker_died_resumes_without_duplicates(
    app: Flask,
    monkeypatch: pytest.MonkeyPatch,
    run_jobs: Callable[[], None],
    mailbox: CapturingSMTPServer,
) -> None:
    news_id = make_list("news").id
    monkeypatch.setattr(importer, "CHUNK_SIZE", 3)
    lines = [f"reader{n}@example.org,Reader {n}" for n in range(10)]
    lines.insert(4, "broken,Bad")  # a bad row in the first chunk: reported once
    body = ("email,name\n" + "\n".join(lines) + "\n").encode()
    job = import_jobs.create_job(
        io.BytesIO(body), "people.csv",
        ImportOptions(list_slug="news", mode=ImportMode.UNCONFIRMED), created_by=None,
    )
    job_id = job.id
    app.extensions["dramatiq"].flush_all()  # the queued message is lost with the worker

    real_write = importer._ChunkWriter.write
    calls: list[int] = []

    def die_in_the_second_chunk(self: Any, chunk: Any, on_bad: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            real_write(self, chunk, on_bad)  # written, but never committed
            raise Crash
        return real_write(self, chunk, on_bad)

    monkeypatch.setattr(importer._ChunkWriter, "write", die_in_the_second_chunk)
    with pytest.raises(Crash):
        import_jobs.run_job(job_id)
    db.session.rollback()
    monkeypatch.setattr(importer._ChunkWriter, "write", real_write)

    job = db.session.get(ImportJob, job_id)
    assert job is not None and job.status is ImportJobStatus.RUNNING
    assert (job.rows_done, job.line) == (3, 5)  # the first chunk, committed with its place
    assert import_jobs.recover_stalled() == 0  # its lease still runs
    job.lease_until = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert import_jobs.recover_stalled() == 1
    run_jobs()

    job = db.session.get(ImportJob, job_id)
    assert job is not None and job.status is ImportJobStatus.DONE, job.error
    assert (job.rows_total, job.imported, job.bad) == (11, 10, 1)
    assert job.counts["created"] == 10 and job.counts["confirmations_queued"] == 10
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 10
    subscriptions = db.session.scalars(select(Subscription)).all()
    assert len(subscriptions) == 10
    assert {s.status for s in subscriptions} == {SubscriptionStatus.UNCONFIRMED}
    assert {s.list_id for s in subscriptions} == {news_id}
    for n in range(10):  # one confirmation mail each, the first chunk's sent before the crash
        assert len(mailbox.to(f"reader{n}@example.org")) == 1
    with open(job.report_path, encoding="utf-8") as report:
        rows = list(csv.reader(report))
    assert [row[0] for row in rows[1:]] == ["6"]  # the bad row once, though read twice


def test_a_running_job_with_a_live_lease_is_left_alone(app: Flask) -> None:
    make_list("news")
    job = import_jobs.create_job(
        io.BytesIO(b"email\nada@example.org\n"), "p.csv", ImportOptions(list_slug="news"),
        created_by=None,
    )
    job.status = ImportJobStatus.RUNNING
    job.lease_until = utcnow() + timedelta(minutes=1)
    db.session.commit()
    import_jobs.run_job(job.id)  # another worker holds it
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0


def consent_of(email: str) -> str | None:
    db.session.remove()
    return db.session.scalar(
        select(Subscription.consent_detail).join(Subscriber).where(Subscriber.email == email)
    )


def test_an_imports_subscriptions_record_the_file_and_the_label_as_their_consent(
    client: FlaskClient, app: Flask, run_jobs: Callable[[], None], tmp_path: Any
) -> None:
    make_list("news", optin=OptIn.SINGLE)
    upload(client, b"email\nfair@example.org\n", name="fair-2026.csv",
           label="signed up on paper at the fair")
    run_jobs()
    expected = "import of fair-2026.csv: signed up on paper at the fair"
    assert consent_of("fair@example.org") == expected

    people = tmp_path / "newsletter-list.csv"
    people.write_text("email\ncli@example.org\n")
    result = app.test_cli_runner().invoke(args=[
        "subscribers", "import", str(people), "--list", "news", "--label", "old mailing list",
    ])
    assert result.exit_code == 0, result.output
    assert consent_of("cli@example.org") == "import of newsletter-list.csv: old mailing list"
