"""Imports from the admin pages: the upload is stored, a worker imports it chunk by chunk.

The job's row says where the import got to (byte offset and line of the next chunk, the
counts, how much of the bad-rows report is written); the importer's ``on_chunk`` updates it
in each chunk's own transaction, so a worker that dies mid-file leaves a row that says
exactly what is done, and the next run starts at the next chunk. A running job holds a
lease renewed at every chunk; :func:`recover_stalled` queues again the jobs whose lease ran
out (their worker died) and the queued ones whose message the broker lost.
"""

from __future__ import annotations

import csv
import io
import logging
import secrets
import shutil
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from flask import current_app
from sqlalchemy import or_, select, update

from newsletter import queue
from newsletter.audience import csvsource
from newsletter.audience.importer import (
    Checkpoint,
    FileRefused,
    ImportOptions,
    ImportResult,
    import_file,
    read_header,
    report_row,
)
from newsletter.audience.lists import get_list_by_slug
from newsletter.audience.models import ImportJob, ImportJobStatus, ImportMode, MailingList
from newsletter.errors import ValidationError
from newsletter.extensions import db
from newsletter.models import get_or_raise, utcnow

log = logging.getLogger(__name__)

#: a running job renews its lease at every chunk; one that has not for this long is dead
LEASE = timedelta(minutes=5)
#: a queued job not started after this long lost its message (or waits behind others:
#: queueing it again is harmless, only one run can hold the lease)
QUEUED_GRACE = timedelta(minutes=2)
REPORT_HEADER = ["line", "problem", "row as read"]


def imports_folder() -> Path:
    """Where uploads and their reports are kept: ``imports/`` in the instance folder."""
    folder = Path(current_app.instance_path) / "imports"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def create_job(
    upload: IO[bytes], file_name: str, options: ImportOptions, *, created_by: int | None
) -> ImportJob:
    """Store the upload, check that it can be read, and queue its import.

    :raises FileRefused: not a CSV file, or no address column (nothing is kept then).
    :raises NotFound: no such list.
    :raises ValidationError: a mode that needs a list without one.
    """
    list_id = get_list_by_slug(options.list_slug).id if options.list_slug else None
    if list_id is None and options.mode in (ImportMode.SUBSCRIBE, ImportMode.UNCONFIRMED):
        raise ValidationError("choose the list to import into", field="list")
    stem = secrets.token_hex(12)
    path = imports_folder() / f"{stem}.csv"
    with path.open("xb") as stored:
        shutil.copyfileobj(upload, stored, 1024 * 1024)
    path.chmod(0o600)
    try:
        with path.open("rb") as stream:
            check_file(stream, options)
    except Exception:
        path.unlink(missing_ok=True)
        raise
    job = ImportJob(
        file_path=str(path),
        file_name=Path(file_name or "upload.csv").name[:255],
        report_path=str(path.with_name(f"{stem}-report.csv")),
        list_id=list_id,
        mode=options.mode,
        options={
            "label": options.label,
            "overwrite": options.overwrite,
            "send_confirmations": options.send_confirmations,
            "encoding": options.encoding,
            "delimiter": options.delimiter,
        },
        total_bytes=path.stat().st_size,
        created_by=created_by,
        counts={},
    )
    db.session.add(job)
    db.session.commit()
    queue.enqueue("run_import", job.id)
    return job


def check_file(stream: IO[bytes], options: ImportOptions) -> None:
    """Refuse, at once, a file the import would refuse whole.

    :raises FileRefused: not text, or no header with an address column.
    """
    sample, complete = csvsource.read_sample(stream)  # type: ignore[arg-type]
    fmt = csvsource.detect(
        sample, encoding=options.encoding, delimiter=options.delimiter, complete=complete
    )
    header = next(csvsource.records(stream, fmt), None)  # type: ignore[arg-type]
    if header is None or header.problem:
        raise FileRefused("the first line must be a header row such as email,name")
    read_header(header.cells)


def get_job(job_id: int) -> ImportJob:
    """The job with this id.

    :raises NotFound: no such job.
    """
    return get_or_raise(ImportJob, job_id, "import")


def recent_jobs(limit: int = 10) -> list[ImportJob]:
    """The latest jobs, newest first."""
    return list(
        db.session.scalars(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit))
    )


def _options(job: ImportJob) -> ImportOptions:
    lst = db.session.get(MailingList, job.list_id) if job.list_id is not None else None
    stored = job.options or {}
    return ImportOptions(
        list_slug=lst.slug if lst is not None else None,
        mode=job.mode,
        overwrite=bool(stored.get("overwrite", True)),
        send_confirmations=bool(stored.get("send_confirmations", True)),
        encoding=stored.get("encoding"),
        delimiter=stored.get("delimiter"),
        file_name=job.file_name,
        label=str(stored.get("label") or ""),
    )


def _claim(job_id: int) -> bool:
    """Take the job for this run: queued, or running with a lease that ran out."""
    now = utcnow()
    table = ImportJob.__table__
    taken = db.session.execute(
        update(table)
        .where(
            table.c.id == job_id,
            or_(
                table.c.status == ImportJobStatus.QUEUED,
                (table.c.status == ImportJobStatus.RUNNING) & (table.c.lease_until < now),
            ),
        )
        .values(status=ImportJobStatus.RUNNING, lease_until=now + LEASE)
        .returning(table.c.id)
    ).first()
    db.session.commit()
    return taken is not None


def run_job(job_id: int) -> None:
    """Import the job's file from where it got to (idempotent: a job that is done, or held
    by a live worker, is left alone)."""
    if not _claim(job_id):
        return
    job = get_job(job_id)
    if job.started_at is None:
        job.started_at = utcnow()
        db.session.commit()
    report_path = Path(job.report_path)
    mode = "r+b" if report_path.exists() else "w+b"
    with report_path.open(mode) as raw:
        # A run that died wrote bad rows past what its last commit recorded: drop them.
        raw.truncate(job.report_bytes)
        raw.seek(job.report_bytes)
        report = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(report)
        if job.report_bytes == 0:
            writer.writerow(REPORT_HEADER)

        def on_bad(line: int, reason: str, cells: list[str]) -> None:
            writer.writerow(report_row(line, reason, cells))

        def on_chunk(checkpoint: Checkpoint, result: ImportResult) -> None:
            report.flush()
            _record(job, checkpoint, result, raw.tell())

        start = Checkpoint(job.offset, job.line) if job.offset else None
        try:
            with Path(job.file_path).open("rb") as stream:
                result = import_file(
                    stream,
                    _options(job),
                    on_bad=on_bad,
                    start=start,
                    result=ImportResult.from_counts(job.counts or {}),
                    on_chunk=on_chunk,
                )
        except FileRefused as error:
            _finish(job_id, ImportJobStatus.FAILED, error=error.message)
            return
        except Exception as error:
            log.exception("import %s stopped", job_id)
            _finish(job_id, ImportJobStatus.FAILED, error=f"stopped by an error: {error}")
            raise
        report.flush()
        report.detach()
    _finish(job_id, ImportJobStatus.DONE, result=result)


def _record(job: ImportJob, checkpoint: Checkpoint, result: ImportResult, report_bytes: int
            ) -> None:
    """Where the job got to, in the chunk's transaction (the importer commits it)."""
    job.offset = checkpoint.offset
    job.line = checkpoint.line
    job.rows_done = result.rows
    job.imported = result.imported
    job.bad = result.bad
    job.counts = result.counts()
    job.report_bytes = report_bytes
    job.lease_until = utcnow() + LEASE


def _finish(job_id: int, status: ImportJobStatus, *, error: str = "",
            result: ImportResult | None = None) -> None:
    db.session.rollback()
    job = get_job(job_id)
    job.status = status
    job.error = error
    job.finished_at = utcnow()
    job.lease_until = None
    if result is not None:
        job.rows_done = job.rows_total = result.rows
        job.imported, job.bad, job.counts = result.imported, result.bad, result.counts()
        job.offset = job.total_bytes
    db.session.commit()


def recover_stalled() -> int:
    """Queue again the jobs whose worker died (lease run out) or whose message was lost
    (queued for long); return how many."""
    now = utcnow()
    table = ImportJob.__table__
    stalled = db.session.scalars(
        select(table.c.id).where(
            or_(
                (table.c.status == ImportJobStatus.RUNNING) & (table.c.lease_until < now),
                (table.c.status == ImportJobStatus.QUEUED)
                & (table.c.created_at < now - QUEUED_GRACE),
            )
        )
    ).all()
    db.session.commit()
    for job_id in stalled:
        queue.enqueue("run_import", int(job_id))
    if stalled:
        log.info("recovery: %s import jobs queued again", len(stalled))
    return len(stalled)


def progress(job: ImportJob) -> dict[str, Any]:
    """The job's state for the progress endpoint (and the page without JavaScript)."""
    total = max(job.total_bytes, 1)
    finished = job.status in (ImportJobStatus.DONE, ImportJobStatus.FAILED)
    percent = 100 if job.status is ImportJobStatus.DONE else min(99, job.offset * 100 // total)
    return {
        "id": job.id,
        "status": job.status.value,
        "finished": finished,
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "imported": job.imported,
        "bad": job.bad,
        "bytes_done": job.offset,
        "bytes_total": job.total_bytes,
        "percent": percent,
        "error": job.error,
        "counts": job.counts or {},
    }
