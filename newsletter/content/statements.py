"""Statements: Markdown posts with YAML front matter, as on a Jekyll site.

A Jekyll post is named ``YYYY-MM-DD-slug.md``; its front matter holds ``title``, ``date``,
``author`` and anything else the site uses (``layout``, ``tags`` …), which is kept as it is.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path, PurePath
from typing import IO, Any

import frontmatter
import yaml
from flask import current_app
from sqlalchemy import select

from newsletter.content import archives
from newsletter.content.archives import Bundle, PostSource
from newsletter.content.jekyll import Site, page_variables, post_path, post_url, render_liquid
from newsletter.content.markdown import html_to_text, render_markdown
from newsletter.content.models import Statement
from newsletter.errors import InvalidStatement
from newsletter.extensions import db
from newsletter.models import get_or_raise

MARKDOWN_SUFFIXES = archives.MARKDOWN_SUFFIXES
_JEKYLL_NAME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)$")
_LEADING_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})")
# The opening of an ATX heading and the rest of the line; the closing #s are taken off in
# Python (see _atx_title): a pattern that also matched them backtracked over every space.
_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t](.*))?$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
MAX_SLUG, MAX_TITLE, MAX_AUTHOR = 200, 300, 200
#: a statement longer than this is refused before anything parses it (the longest essays
#: are a tenth of it; Markdown rendering costs about 15 µs a character at worst)
MAX_STATEMENT_CHARS = 256 * 1024
MAX_FRONT_MATTER_CHARS = 64 * 1024
#: how deeply front matter may nest lists and mappings (Jekyll's needs two or three)
MAX_FRONT_MATTER_DEPTH = 32


class _FrontMatterLoader(yaml.SafeLoader):
    """YAML's safe loader, less what makes a small document cost a lot or break.

    Aliases let 500 bytes stand for 10**10 items (or a list that holds itself), and every
    level of nesting is a level of recursion: both are refused where they start, with the
    line, before anything is built. So are explicit tags (``!!timestamp x``): front matter
    needs none, and PyYAML's constructors meet a wrong value with any exception at all.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None,
                "anchors and aliases (&name, *name) are not allowed", event.start_mark,
            )  # fmt: skip
        if getattr(event, "tag", None) not in (None, "!"):
            raise yaml.composer.ComposerError(
                None, None, "explicit tags (!!type) are not allowed", event.start_mark
            )
        if self._depth >= MAX_FRONT_MATTER_DEPTH:
            raise yaml.composer.ComposerError(
                None, None,
                f"lists and mappings nest deeper than {MAX_FRONT_MATTER_DEPTH} levels",
                event.start_mark,
            )  # fmt: skip
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


@dataclass
class StatementData:
    """A parsed statement, not yet stored."""

    slug: str
    title: str
    author: str
    date: date | None
    body: str
    front_matter: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportReport:
    """What an import did: statements created, updated, and files that failed (name, reason)."""

    created: list[Statement] = field(default_factory=list)
    updated: list[Statement] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    #: each post imported, in order, with what changed
    results: list[ImportResult] = field(default_factory=list)
    #: (source, warning): Liquid tags removed, links that cannot be resolved
    warnings: list[tuple[str, str]] = field(default_factory=list)


def slugify(value: str) -> str:
    """A URL slug: lower case, words joined by hyphens (letters outside ASCII are kept)."""
    normal = unicodedata.normalize("NFKD", value.casefold())  # casefold: ß → ss
    ascii_only = normal.encode("ascii", "ignore").decode("ascii")
    # Titles in other scripts would vanish when forced to ASCII; keep their letters instead.
    base = ascii_only if re.search(r"\w", ascii_only) else unicodedata.normalize("NFKC", value)
    slug = re.sub(r"[^\w]+", "-", base.lower()).replace("_", "-")
    return re.sub(r"-{2,}", "-", slug).strip("-")[:MAX_SLUG].strip("-")


def parse_statement(text: str, filename: str | None = None) -> StatementData:
    """Parse a Markdown post with optional YAML front matter.

    The slug comes from the front matter ``slug``, else the Jekyll file name
    (``YYYY-MM-DD-slug.md``), else the title; the date from the front matter, else the file
    name; the title from the front matter, else the first heading (taken out of the body).

    :raises InvalidStatement: invalid YAML, no title, no text, a bad date, NUL characters; the
        reason says which.
    """
    source = filename or "statement"
    if len(text) > MAX_STATEMENT_CHARS:
        raise InvalidStatement(
            source, f"the statement is longer than {MAX_STATEMENT_CHARS:,} characters"
        )
    if "\x00" in text:
        # PostgreSQL stores no NUL in text; a file holding one is rarely text at all.
        raise InvalidStatement(source, "the file contains NUL characters; is it a text file?")
    metadata, body = _split_front_matter(text, source)
    stem, name_date = _from_filename(filename, source)

    title = _text_field(metadata, "title", source)
    if not title:
        title, body = _title_from_heading(body)
    if not title:
        raise InvalidStatement(
            source, "no title: add `title:` to the front matter or start the text with a # heading"
        )
    if len(title) > MAX_TITLE:
        raise InvalidStatement(source, f"the title is longer than {MAX_TITLE} characters")
    if not body.strip():
        raise InvalidStatement(source, "the statement has no text after the front matter")

    author = _author(metadata.get("author", metadata.get("authors")), source)
    when = _date(metadata["date"], source) if metadata.get("date") else name_date
    slug = slugify(str(metadata.get("slug") or stem or title))
    if not slug:
        raise InvalidStatement(source, "cannot make a slug from the title; add `slug:`")
    return StatementData(
        slug=slug,
        title=title,
        author=author,
        date=when,
        body=body.strip("\n") + "\n",
        front_matter=_json_safe(metadata),
    )


def _split_front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
    text = text.lstrip("\ufeff")
    handler = frontmatter.YAMLHandler()
    if not handler.detect(text):
        return {}, text
    try:
        raw, body = handler.split(text)
    except ValueError:
        return {}, text  # an opening --- with no closing one: a horizontal rule, not YAML
    if len(raw) > MAX_FRONT_MATTER_CHARS:
        raise InvalidStatement(
            source, f"the front matter is longer than {MAX_FRONT_MATTER_CHARS:,} characters"
        )
    try:
        metadata = yaml.load(raw, Loader=_FrontMatterLoader) if raw.strip() else {}
    except yaml.YAMLError as error:
        reason = f"invalid YAML front matter: {_yaml_problem(error)}"
        raise InvalidStatement(source, reason) from None
    except ValueError as error:
        # A value YAML reads but Python cannot build: 2020-13-45, an integer of 5,000 digits.
        reason = f"invalid YAML front matter: {' '.join(str(error).split())[:200]}"
        raise InvalidStatement(source, reason) from None
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InvalidStatement(
            source, f"the front matter must be a mapping of keys, not a {type(metadata).__name__}"
        )
    return {str(key): value for key, value in metadata.items()}, body


def _yaml_problem(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None) or str(error)
    mark = getattr(error, "problem_mark", None)
    # marks count from 0 and the front matter text starts on the opening --- line
    return f"{problem} (line {mark.line + 1})" if mark is not None else " ".join(problem.split())


def _from_filename(filename: str | None, source: str) -> tuple[str | None, date | None]:
    if not filename:
        return None, None
    stem = PurePath(filename).name
    for suffix in MARKDOWN_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    match = _JEKYLL_NAME.match(stem)
    if not match:
        # Only Jekyll names carry a slug: uploads all called "post.md" must not collide.
        return None, None
    year, month, day, slug = match.groups()
    try:
        return slug, date(int(year), int(month), int(day))
    except ValueError:
        reason = f"the file name has an impossible date {stem[:10]}"
        raise InvalidStatement(source, reason) from None


def _text_field(metadata: dict[str, Any], key: str, source: str) -> str:
    value = metadata.get(key)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise InvalidStatement(source, f"`{key}` in the front matter must be text")
    return " ".join(str(value).split())


def _author(value: Any, source: str) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        value = value.get("name", "")
    if isinstance(value, list):
        value = ", ".join(
            str(item.get("name", "")) if isinstance(item, dict) else str(item) for item in value
        )
    author = " ".join(str(value).split())
    if len(author) > MAX_AUTHOR:
        raise InvalidStatement(source, f"the author is longer than {MAX_AUTHOR} characters")
    return author


def _date(value: Any, source: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    match = _LEADING_DATE.match(str(value))
    if match:
        try:
            return date(*(int(part) for part in match.groups()))
        except ValueError:
            pass
    raise InvalidStatement(source, f"`date` {value!r} is not a date like 2020-11-03")


def _title_from_heading(body: str) -> tuple[str, str]:
    """The first heading's text; the heading leaves the body when it opens it."""
    lines = body.split("\n")
    fenced = False
    seen_text = False
    for index, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if fenced:
            continue
        heading = _ATX_HEADING.match(line)
        title = ""
        end = index + 1
        if heading:
            title = _atx_title(heading.group(1) or "")
        elif (
            index > 0 and lines[index - 1].strip() and _SETEXT_UNDERLINE.match(line)
            and not (index > 1 and lines[index - 2].strip())
        ):  # fmt: skip
            title, index = lines[index - 1].strip(), index - 1
        if title:
            title = " ".join(re.sub(r"[*_`]", "", title).split())
            if not seen_text or not any(lines[i].strip() for i in range(index)):
                return title, "\n".join(lines[:index] + lines[end:])
            return title, body
        if line.strip() and not _SETEXT_UNDERLINE.match(line):
            seen_text = True
    return "", body


def _atx_title(rest: str) -> str:
    """An ATX heading's text without its optional closing run of #s (CommonMark: the run
    stands alone or after a space or tab)."""
    text = rest.strip(" \t")
    unclosed = text.rstrip("#")
    if not unclosed or unclosed[-1] in " \t":
        text = unclosed.rstrip(" \t")
    return text


def _json_safe(value: Any) -> Any:
    """Front matter as JSON can store it (YAML dates become ISO strings)."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(item) for item in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # YAML's .nan and .inf are not JSON (PostgreSQL refuses them)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


@dataclass
class ImportResult:
    """One post imported: the statement, whether it is new, what changed, and warnings."""

    statement: Statement
    created: bool
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: ``created SLUG``, ``updated SLUG: title, body`` or ``unchanged SLUG``."""
        slug = self.statement.slug
        if self.created:
            return f"created {slug}"
        if not self.changes:
            return f"unchanged {slug}"
        return f"updated {slug}: {', '.join(self.changes)}"


def site() -> Site:
    """The site statements come from (``NEWSLETTER_SITE_URL``)."""
    return Site.from_address(current_app.config.get("SITE_URL"), current_app.config["SITE_NAME"])


def _find_post_path(name: str, known: dict[str, str] | None = None) -> str | None:
    """``{% post_url 2020-11-03-slug %}``: the path of that post among those imported with
    this one (``known``, by file name), else of the statement imported from it before."""
    if known and name in known:
        return known[name]
    stem = _JEKYLL_NAME.match(name)
    slug = slugify(stem.group(4) if stem else name)
    found = db.session.scalar(select(Statement).where(Statement.slug == slug))
    if found is None:
        return None
    address = statement_url(found)
    root = site().root
    return address[len(root):] if root and address.startswith(root) else None


def resolve_liquid(
    data: StatementData,
    includes: dict[str, str] | None = None,
    known_posts: dict[str, str] | None = None,
) -> list[str]:
    """Resolve the Liquid in ``data.body`` in place (unless ``render_with_liquid: false``);
    the warnings: tags removed and why, relative links that cannot be resolved.

    :param known_posts: the paths of the posts imported together, by Jekyll file name
        (without ``.md``), for ``{% post_url %}``.
    """
    where = site()
    warnings: list[str] = []
    if data.front_matter.get("render_with_liquid", True) is not False:
        page = page_variables(where, data.front_matter, data.slug, data.title, data.date)
        data.body, warnings = render_liquid(
            data.body, site=where, page=page, includes=includes,
            find_post=lambda name: _find_post_path(name, known_posts),
        )  # fmt: skip
        if "\x00" in data.body:
            raise InvalidStatement(data.slug, "an include holds NUL characters")
    if not post_url(where, data.front_matter, data.slug, data.date) and _RELATIVE.search(
        data.body
    ):
        warnings.append(
            "relative links and images are left out of mail: set NEWSLETTER_SITE_URL "
            "(or give the post an absolute permalink)"
        )
    return warnings


_RELATIVE = re.compile(
    r"\]\(\s*<?(?!https?:|mailto:|#)[^)\s]|(?:src|href)\s*=\s*[\"']?(?!https?:|mailto:|#)[^\s>]",
    re.IGNORECASE,
)


def _existing(data: StatementData) -> Statement | None:
    """The statement this post updates: the same slug, else the same permalink."""
    found = db.session.scalar(select(Statement).where(Statement.slug == data.slug))
    permalink = data.front_matter.get("permalink")
    if found is None and isinstance(permalink, str) and permalink.strip():
        found = db.session.scalars(
            select(Statement)
            .where(Statement.front_matter["permalink"].as_string() == permalink)
            .order_by(Statement.id)
        ).first()
    return found


def _changes(statement: Statement, data: StatementData) -> list[str]:
    """What an update changes, by name: title, author, date, body, front matter (keys)."""
    changes = [
        name for name in ("title", "author", "date", "body")
        if getattr(statement, name) != getattr(data, name)
    ]  # fmt: skip
    old, new = statement.front_matter or {}, data.front_matter
    keys = sorted(
        key for key in set(old) | set(new)
        if old.get(key) != new.get(key) and key not in changes  # title: said once
    )  # fmt: skip
    if keys:
        changes.append(f"front matter ({', '.join(keys)})")
    return changes


def import_post(
    text: str,
    filename: str | None = None,
    *,
    includes: dict[str, str] | None = None,
    known_posts: dict[str, str] | None = None,
) -> ImportResult:
    """Parse a post, resolve its Liquid and store it, updating the statement with the same
    slug (or, failing that, the same ``permalink``); the result says what changed.

    :raises InvalidStatement: see ``parse_statement``.
    """
    data = parse_statement(text, filename)
    warnings = resolve_liquid(data, includes, known_posts)
    statement = _existing(data)
    if statement is None:
        statement = Statement(
            slug=data.slug, title=data.title, author=data.author, date=data.date,
            body=data.body, front_matter=data.front_matter,
        )  # fmt: skip
        db.session.add(statement)
        db.session.commit()
        return ImportResult(statement, True, [], warnings)
    changes = _changes(statement, data)
    if changes:  # an unchanged post leaves updated_at alone
        statement.title = data.title
        statement.author = data.author
        statement.date = data.date
        statement.body = data.body
        statement.front_matter = data.front_matter
    db.session.commit()
    return ImportResult(statement, False, changes, warnings)


def import_statement(text: str, filename: str | None = None) -> tuple[Statement, bool]:
    """Parse and store a statement, updating the one with the same slug.

    :returns: the statement and whether it was created (False: updated).
    :raises InvalidStatement: see ``parse_statement``.
    """
    result = import_post(text, filename)
    return result.statement, result.created


def import_bundle(
    bundle: Bundle, *, progress: Callable[[PostSource], None] | None = None
) -> ImportReport:
    """Import the posts of a bundle (files, folders, zips), each on its own: a bad one is
    reported in ``errors`` and the rest still import."""
    report = ImportReport(errors=list(bundle.errors))
    known = _post_paths(bundle)
    for post in bundle.posts:
        try:
            text = post.read().decode("utf-8-sig")
            result = import_post(text, post.name, includes=bundle.includes, known_posts=known)
        except InvalidStatement as error:
            db.session.rollback()
            report.errors.append((post.source, error.reason))
        except UnicodeDecodeError:
            report.errors.append((post.source, "not UTF-8 text"))
        except OSError as error:
            report.errors.append((post.source, error.strerror or str(error)))
        else:
            (report.created if result.created else report.updated).append(result.statement)
            report.results.append(result)
            report.warnings.extend((post.source, warning) for warning in result.warnings)
        if progress is not None:
            progress(post)
    return report


def _post_paths(bundle: Bundle) -> dict[str, str]:
    """Each post's path on the site by its file name, so that ``{% post_url %}`` finds a post
    imported in the same go whatever the order (bad files are left to the import to report)."""
    paths: dict[str, str] = {}
    for post in bundle.posts:
        try:
            data = parse_statement(post.read().decode("utf-8-sig"), post.name)
        except (InvalidStatement, UnicodeDecodeError, OSError):
            continue
        stem = re.sub(r"\.(md|markdown)$", "", post.name, flags=re.IGNORECASE)
        paths[stem] = post_path(data.front_matter, data.slug, data.date)
    return paths


def import_paths(
    paths: list[Path], *, progress: Callable[[Path], None] | None = None
) -> ImportReport:
    """Import Markdown files, folders of them (``*.md`` / ``*.markdown``, recursively; only
    ``_posts`` when there is one) and zip files of Jekyll sites.

    Each file stands alone: a bad one is reported in ``errors`` and the rest still import.
    ``progress`` is called after each file (the CLI draws its progress bar with it).

    :raises UnsafeArchive: a zip is refused; nothing at all is imported then.
    """
    bundle = archives.from_paths(paths)
    step = (lambda post: progress(Path(post.source))) if progress is not None else None
    return import_bundle(bundle, progress=step)


def import_zip(handle: IO[bytes], source: str = "upload.zip") -> ImportReport:
    """Import the posts of a zip file (an upload, an API body).

    :raises UnsafeArchive: the zip is refused whole; nothing is imported.
    """
    return import_bundle(archives.read_zip(handle, source, limits=archives.Limits.from_config()))


def markdown_files(paths: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The files an import of ``paths`` reads (zips counted as one), and the paths that
    name nothing to import."""
    files: list[Path] = []
    errors: list[tuple[str, str]] = []
    for path in paths:
        if path.is_dir():
            found = [post.path for post in archives.from_folder(path).posts if post.path]
            if not found:
                errors.append((str(path), "no .md or .markdown files in this folder"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append((str(path), "no such file or folder"))
    return files, errors


def list_statements() -> list[Statement]:
    """Every statement, newest first (by date, then by when it was imported)."""
    query = select(Statement).order_by(
        Statement.date.desc().nulls_last(), Statement.created_at.desc(), Statement.id.desc()
    )
    return list(db.session.scalars(query))


def get_statement(statement_id: int) -> Statement:
    """The statement with this id.

    :raises NotFound: no such statement.
    """
    return get_or_raise(Statement, statement_id, "statement")


def statement_url(statement: Statement) -> str:
    """The statement's address on its site: an absolute ``permalink``, else the site's
    address and the post's path (Jekyll's default permalink); "" when the site is unknown."""
    return post_url(site(), statement.front_matter or {}, statement.slug, statement.date)


def statement_html(statement: Statement) -> str:
    """The statement's body as cleaned HTML; relative links and images made absolute
    against its address on the site."""
    return render_markdown(statement.body, base_url=statement_url(statement) or None)


def statement_text(statement: Statement, *, width: int = 78) -> str:
    """The statement's body as plain text for the text part of a mail."""
    return html_to_text(statement_html(statement), width=width)
