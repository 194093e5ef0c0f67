"""What an import reads: Markdown files, folders of them and zip files of a Jekyll site.

A zip is read whole before anything is imported, and refused whole (``UnsafeArchive``) when
a path in it would escape its folder (``..``, an absolute path, a drive, a symlink), when it
holds too many entries, or when what it unpacks passes the caps: each file's and the total
size, checked on the sizes the headers declare AND on the bytes actually read (a header can
lie). Only posts and ``_includes/`` files are read; other entries (images, layouts) are
checked for their paths and counted, never unpacked.

In a folder or zip that holds a ``_posts`` folder only the posts are imported (a site's
pages, ``index.md`` or ``about.md``, are not statements); ``_includes/`` files are what
``{% include %}`` finds.
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from flask import current_app

from newsletter.errors import ValidationError

MARKDOWN_SUFFIXES = (".md", ".markdown")
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/x-zip")
_CHUNK = 64 * 1024
#: an include larger than this is not a snippet; it is skipped
MAX_INCLUDE_BYTES = 256 * 1024


class UnsafeArchive(ValidationError):
    """A zip file that is refused whole: nothing in it is imported."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}; nothing was imported", field="file")
        self.source = source
        self.reason = reason


@dataclass
class PostSource:
    """One file to import: where it came from (shown in reports), its name and bytes."""

    source: str
    name: str
    data: bytes | None = None
    path: Path | None = None  # read when imported (folders), so one bad file stays one error

    def read(self) -> bytes:
        """The file's bytes."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


@dataclass
class Bundle:
    """Posts to import, the ``_includes/`` they may use, and paths that named nothing."""

    posts: list[PostSource] = field(default_factory=list)
    includes: dict[str, str] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def extend(self, other: Bundle) -> None:
        """Add another bundle's posts, includes and errors to this one."""
        self.posts.extend(other.posts)
        for name, text in other.includes.items():
            self.includes.setdefault(name, text)
        self.errors.extend(other.errors)


@dataclass(frozen=True)
class Limits:
    """How much a zip may unpack: in all, per file, and how many entries it may hold."""

    max_bytes: int
    max_file_bytes: int
    max_files: int

    @classmethod
    def from_config(cls) -> Limits:
        """The caps from the settings (``NEWSLETTER_IMPORT_ZIP_*``)."""
        config = current_app.config
        return cls(
            int(config["IMPORT_ZIP_MAX_BYTES"]),
            int(config["IMPORT_ZIP_MAX_FILE_BYTES"]),
            int(config["IMPORT_ZIP_MAX_FILES"]),
        )


def is_markdown(name: str) -> bool:
    """Whether ``name`` is a Markdown file by its suffix."""
    return name.lower().endswith(MARKDOWN_SUFFIXES)


def _only_posts(names: Iterable[PurePosixPath]) -> bool:
    return any("_posts" in name.parts[:-1] for name in names)


def _include_name(name: PurePosixPath) -> str | None:
    parts = name.parts
    if "_includes" not in parts[:-1]:
        return None
    return "/".join(parts[parts.index("_includes") + 1 :])


def _wanted(name: PurePosixPath, only_posts: bool) -> bool:
    if not is_markdown(name.name) or "_includes" in name.parts[:-1]:
        return False
    if any(part.startswith(".") or part == "__MACOSX" for part in name.parts):
        return False  # editors' and Finder's leftovers
    return "_posts" in name.parts[:-1] if only_posts else True


# --- folders and files ----------------------------------------------------------------------


def from_paths(paths: list[Path], *, limits: Limits | None = None) -> Bundle:
    """The posts in files, folders (recursively) and zip files.

    :raises UnsafeArchive: a zip among them is refused (then nothing is imported).
    """
    bundle = Bundle()
    for path in paths:
        if path.is_file() and path.suffix.lower() == ".zip":
            with path.open("rb") as handle:
                bundle.extend(read_zip(handle, str(path), limits=limits or Limits.from_config()))
        elif path.is_dir():
            bundle.extend(from_folder(path))
        elif path.is_file():
            bundle.posts.append(PostSource(str(path), path.name, path=path))
            bundle.includes.update(_folder_includes(path.parent.parent / "_includes"))
        else:
            bundle.errors.append((str(path), "no such file or folder"))
    return bundle


def from_folder(folder: Path) -> Bundle:
    bundle = Bundle()
    files = sorted(item for item in folder.rglob("*") if item.is_file())
    relative = [PurePosixPath(item.relative_to(folder).as_posix()) for item in files]
    only_posts = _only_posts(relative)
    for item, name in zip(files, relative, strict=True):
        if _wanted(name, only_posts):
            bundle.posts.append(PostSource(str(item), item.name, path=item))
    if not bundle.posts:
        bundle.errors.append((str(folder), "no .md or .markdown files in this folder"))
    # A site's folder, or its _posts folder given alone: the includes are beside _posts.
    for candidate in (folder / "_includes", folder.parent / "_includes"):
        bundle.includes.update(_folder_includes(candidate))
    return bundle


def _folder_includes(folder: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    if not folder.is_dir():
        return found
    for item in sorted(folder.rglob("*")):
        try:
            if item.is_file() and item.stat().st_size <= MAX_INCLUDE_BYTES:
                found[item.relative_to(folder).as_posix()] = item.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # an include that cannot be read is as good as missing: warned then
    return found


# --- zip files ------------------------------------------------------------------------------


def _safe_name(info: zipfile.ZipInfo, source: str) -> PurePosixPath:
    raw = info.filename
    name = raw.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(source, f"the entry {raw!r} has an absolute path")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise UnsafeArchive(source, f"the entry {raw!r} points outside the zip's folder")
    if "\x00" in name:
        raise UnsafeArchive(source, f"the entry {raw!r} has a NUL in its name")
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):  # 3: made on Unix, where links exist
        raise UnsafeArchive(source, f"the entry {raw!r} is a symbolic link")
    if info.flag_bits & 0x1:
        raise UnsafeArchive(source, f"the entry {raw!r} is encrypted")
    return path


def read_zip(handle: IO[bytes], source: str, *, limits: Limits) -> Bundle:
    """The posts and includes in a zip file, checked before anything is imported.

    :raises UnsafeArchive: not a zip, a path that escapes, too many entries, or more bytes
        than the caps allow (declared or read); ``reason`` says which.
    """
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UnsafeArchive(source, "not a zip file (or a damaged one)") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.max_files:
            raise UnsafeArchive(
                source, f"it holds {len(entries):,} entries; at most {limits.max_files:,} are read"
            )
        names = [(info, _safe_name(info, source)) for info in entries]
        files = [(info, name) for info, name in names if not info.is_dir()]
        only_posts = _only_posts(name for _, name in files)
        wanted = [
            (info, name) for info, name in files
            if _wanted(name, only_posts) or _include_name(name) is not None
        ]  # fmt: skip
        declared = 0
        for info, name in wanted:
            if info.file_size > limits.max_file_bytes:
                raise UnsafeArchive(source, _too_big_file(name, limits))
            declared += info.file_size
        if declared > limits.max_bytes:
            raise UnsafeArchive(source, _too_big(limits))
        bundle = Bundle()
        total = 0
        for info, name in wanted:
            data, total = _read_entry(archive, info, name, source, limits, total)
            include = _include_name(name)
            if include is not None:
                try:
                    bundle.includes[include] = data.decode("utf-8")
                except UnicodeDecodeError:
                    continue
            else:
                bundle.posts.append(PostSource(f"{source}:{name}", name.name, data=data))
    if not bundle.posts:
        bundle.errors.append((source, "no .md or .markdown files in this zip"))
    return bundle


def _read_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: PurePosixPath, source: str,
    limits: Limits, total: int,
) -> tuple[bytes, int]:  # fmt: skip
    """One entry's bytes, counted as they come out of the decompressor."""
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as entry:
            while chunk := entry.read(_CHUNK):
                size += len(chunk)
                total += len(chunk)
                if size > limits.max_file_bytes:
                    raise UnsafeArchive(source, _too_big_file(name, limits))
                if total > limits.max_bytes:
                    raise UnsafeArchive(source, _too_big(limits))
                chunks.append(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
        raise UnsafeArchive(source, f"the entry {str(name)!r} cannot be read ({error})") from None
    return b"".join(chunks), total


def _too_big_file(name: PurePosixPath, limits: Limits) -> str:
    return f"the entry {str(name)!r} unpacks past {limits.max_file_bytes:,} bytes, the cap per file"


def _too_big(limits: Limits) -> str:
    return f"it unpacks past {limits.max_bytes:,} bytes, the cap for a zip"
