"""Reading an import file as records: encoding and delimiter detected or chosen, streamed.

The file is read as bytes, one physical line at a time, and each line is decoded on its own:
a line that is not valid in the file's encoding makes its record a bad row instead of
refusing the whole file. Lines and records are capped before the csv module sees them, so a
50 MB line costs 64 KiB of memory and one bad row. Every record carries the byte offset just
after it, so an import can stop after any record and carry on from there later.

A file that is not text at all (NUL bytes, control characters) is refused whole.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from newsletter.errors import ValidationError

#: bytes read to detect the encoding, the delimiter and whether the file is text at all
SAMPLE_BYTES = 64 * 1024
#: a physical line longer than this is a bad row; the rest of it is skipped unread
MAX_LINE_BYTES = 64 * 1024
#: a record (lines joined by quoted newlines) longer than this is a bad row; it stays under
#: the csv module's default field size limit (131,072 characters), which is never reached
MAX_RECORD_BYTES = 128 * 1024
#: a record running over more lines than this is a bad row (an unclosed quote, usually)
MAX_RECORD_LINES = 50
BLOCK = 64 * 1024
DELIMITERS = ",;\t|"
#: names people type for the delimiter option
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
#: what encoding detection falls back to when the text is not UTF-8: Windows' Western
#: European code page, a superset of Latin-1's printable characters (Excel's CSV)
FALLBACK_ENCODING = "cp1252"


class FileRefused(ValidationError):
    """The file cannot be imported at all (not text, no address column, …)."""

    field = "file"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="file")


@dataclass(frozen=True)
class Format:
    """How to read a file: its codec, where its data starts (after a byte-order mark), its
    line ending in bytes, the width of one code unit, and the delimiter."""

    encoding: str
    delimiter: str
    bom: int = 0
    newline: bytes = b"\n"
    unit: int = 1

    @property
    def label(self) -> str:
        """How a person names the encoding (``utf-8``, ``cp1252``, ``utf-16-le``)."""
        return self.encoding


@dataclass(frozen=True)
class Record:
    """One CSV record: its first line number, its cells, why it cannot be used (or None),
    and the byte offset just after it."""

    line: int
    cells: list[str]
    problem: str | None
    end: int


def codec_name(encoding: str) -> str:
    """The codec's canonical name.

    :raises FileRefused: no such encoding.
    """
    try:
        return codecs.lookup(encoding.strip()).name
    except LookupError:
        raise FileRefused(f"there is no encoding called {encoding!r}") from None


def delimiter_char(delimiter: str) -> str:
    """The delimiter character for what a person typed (``tab``, ``;``, …).

    :raises FileRefused: not one character.
    """
    char = DELIMITER_NAMES.get(delimiter.strip().lower(), delimiter) if delimiter else ""
    if len(char) != 1 or char in "\r\n\"":
        raise FileRefused(f"the delimiter must be one character, not {delimiter!r}")
    return char


def detect(sample: bytes, *, encoding: str | None = None, delimiter: str | None = None,
           complete: bool = False) -> Format:
    """The format of a file whose first bytes are ``sample`` (``complete``: the whole file).

    :raises FileRefused: the file is empty or not text.
    """
    bom, codec = _bom(sample)
    if encoding:
        chosen = codec_name(encoding)
        if chosen == "utf-8-sig":
            chosen = "utf-8"
        if chosen == "utf-16":  # the byte-order mark says which; little-endian without one
            chosen = codec if codec.startswith("utf-16") else "utf-16-le"
        if codec != chosen:
            bom = 0  # a mark of another encoding is not skipped: it is data then
        codec = chosen
    elif not codec:
        if b"\x00" in sample:
            codec = _utf16_without_bom(sample)
        elif _mostly_utf8(sample, complete):
            codec = "utf-8"
        else:
            codec = FALLBACK_ENCODING
    unit = 2 if codec.startswith("utf-16") else 1
    body = sample[bom:]
    if not complete:  # the sample may end inside a line (or inside a character)
        cut = body.rfind("\n".encode(codec))
        body = body[: cut + 1] if cut > 0 else body
    text = body.decode(codec, errors="replace")
    if not text.strip():
        raise FileRefused("the file is empty; it needs a header row such as email,name")
    _refuse_binary(text)
    newline = "\n" if "\n" in text else ("\r" if "\r" in text else "\n")
    chosen_delimiter = delimiter_char(delimiter) if delimiter else _sniff(text)
    return Format(
        encoding=codec,
        delimiter=chosen_delimiter,
        bom=bom,
        newline=newline.encode(codec),
        unit=unit,
    )


def _bom(sample: bytes) -> tuple[int, str]:
    if sample.startswith(codecs.BOM_UTF8):
        return 3, "utf-8"
    if sample.startswith(codecs.BOM_UTF16_LE) and not sample.startswith(codecs.BOM_UTF32_LE):
        return 2, "utf-16-le"
    if sample.startswith(codecs.BOM_UTF16_BE):
        return 2, "utf-16-be"
    return 0, ""


def _utf16_without_bom(sample: bytes) -> str:
    """UTF-16 when every other byte is mostly NUL (ASCII text in UTF-16), else refuse."""
    even, odd = sample[0::2], sample[1::2]
    if len(sample) >= 4 and odd.count(0) > 0.9 * len(odd) and not even.count(0):
        return "utf-16-le"
    if len(sample) >= 4 and even.count(0) > 0.9 * len(even) and not odd.count(0):
        return "utf-16-be"
    raise FileRefused(_NOT_TEXT)


_NOT_TEXT = "this is not a CSV or TSV file: it holds binary data, not text"


def _mostly_utf8(sample: bytes, complete: bool) -> bool:
    """Whether the lines of the sample that are not plain ASCII are mostly valid UTF-8.

    Mostly, not all: one Latin-1 line in a UTF-8 file is a bad row, not a reason to read
    every other line wrong.
    """
    lines = sample.split(b"\n")
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # may end inside a character
    valid = invalid = 0
    for line in lines:
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            invalid += 1
        else:
            valid += 1
    return valid >= invalid


def _refuse_binary(text: str) -> None:
    controls = sum(1 for char in text if char < " " and char not in "\t\r\n\f")
    if "\x00" in text or controls > max(len(text) // 100, 2):
        raise FileRefused(_NOT_TEXT)


def _sniff(text: str) -> str:
    lines = text.splitlines()[:20]
    header = lines[0] if lines else ""
    try:
        found = csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        found = ""
    if found and found in header:
        return found
    # The header names the columns, so it holds one delimiter less than it has columns.
    counts = {char: header.count(char) for char in DELIMITERS}
    best = max(counts, key=lambda char: counts[char])
    return best if counts[best] else ","


def read_sample(stream: BinaryIO) -> tuple[bytes, bool]:
    """The first bytes of the stream and whether they are all of it; the stream is left at
    its start."""
    stream.seek(0)
    sample = stream.read(SAMPLE_BYTES + 1)
    stream.seek(0)
    return sample[:SAMPLE_BYTES], len(sample) <= SAMPLE_BYTES


class _RecordTooLong(Exception):
    """Raised from inside the csv reader's line source: the record so far is too long."""


class _Lines:
    """Physical lines for ``csv.reader``, decoded one at a time, counted and capped.

    An iterator class, not a generator: it raises ``_RecordTooLong`` through the reader and
    then goes on giving lines (a generator ends at its first exception).
    """

    def __init__(self, stream: BinaryIO, fmt: Format, offset: int, line: int) -> None:
        self.stream = stream
        self.fmt = fmt
        self.offset = offset  # bytes consumed: the end of the last line handed out
        self.line = line - 1  # the number of the last line handed out
        self.problem: str | None = None
        self.record_lines = 0
        self.record_bytes = 0
        self._buffer = b""
        self._at = 0
        self._fast = fmt.unit == 1 and fmt.newline == b"\n"
        stream.seek(offset)

    def start_record(self) -> int:
        """Begin a new record; return the number of its first line."""
        self.problem = None
        self.record_lines = self.record_bytes = 0
        return self.line + 1

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw, length = self._read_line()
        if not length:
            raise StopIteration
        self.offset += length
        self.line += 1
        self.record_lines += 1
        self.record_bytes += length
        if raw is None:
            self.problem = self.problem or (
                f"line {self.line} is longer than {MAX_LINE_BYTES // 1024} KiB"
            )
            return "\n"  # its record is bad; the line itself is never parsed
        if self.record_lines > MAX_RECORD_LINES or self.record_bytes > MAX_RECORD_BYTES:
            raise _RecordTooLong
        try:
            decoded = raw.decode(self.fmt.encoding)
        except UnicodeDecodeError:
            self.problem = self.problem or (
                f"line {self.line} is not valid {self.fmt.label} text"
            )
            return raw.decode(self.fmt.encoding, errors="replace")
        if "\x00" in decoded:  # text never holds one, and PostgreSQL refuses it
            self.problem = self.problem or f"line {self.line} holds a NUL character"
        return decoded

    def _read_line(self) -> tuple[bytes | None, int]:
        """The next line in bytes (with its newline) and its length; None for the bytes of
        a line that was too long (the rest of it was skipped unread)."""
        if not self._fast:
            return self._read_line_generic()
        raw = self.stream.readline(MAX_LINE_BYTES + 1)
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
            return raw, len(raw)
        skipped = len(raw)
        while raw and not raw.endswith(b"\n"):
            raw = self.stream.readline(BLOCK)
            skipped += len(raw)
        return None, skipped

    def _read_line_generic(self) -> tuple[bytes | None, int]:
        """Line splitting for newlines of more than one byte (UTF-16) or a lone CR: the
        newline must start on a code-unit boundary."""
        newline, unit = self.fmt.newline, self.fmt.unit
        skipped = 0
        scan = self._at
        while True:
            found = self._buffer.find(newline, scan)
            while found >= 0 and (found - self._at) % unit:
                found = self._buffer.find(newline, found + 1)
            if found >= 0:
                end = found + len(newline)
                line, self._at = self._buffer[self._at : end], end
                return (None, skipped + len(line)) if skipped else (line, len(line))
            pending = len(self._buffer) - self._at
            if pending > MAX_LINE_BYTES:
                # Too long: drop what is buffered (whole code units; no newline hides in
                # it, the search above found none) and keep looking for the line's end.
                drop = pending - pending % unit
                skipped += drop
                self._at += drop
            block = self.stream.read(BLOCK)
            if not block:
                line, self._buffer, self._at = self._buffer[self._at :], b"", 0
                if skipped:
                    return None, skipped + len(line)
                return line, len(line)
            # Search again only where a newline may now be completed or start.
            scan = max(self._at, len(self._buffer) - len(newline) + 1) - self._at
            self._buffer = self._buffer[self._at :] + block
            self._at = 0


def records(stream: BinaryIO, fmt: Format, *, offset: int | None = None, line: int = 1
            ) -> Iterator[Record]:
    """The file's records from byte ``offset`` (default: its start, after any byte-order
    mark), numbering lines from ``line``."""
    lines = _Lines(stream, fmt, fmt.bom if offset is None else offset, line)
    reader = csv.reader(lines, delimiter=fmt.delimiter)
    while True:
        first = lines.start_record()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _RecordTooLong:
            yield Record(first, [], _too_long(first, lines.line), lines.offset)
            continue
        except csv.Error as error:
            yield Record(first, [], f"cannot be read as CSV ({error})", lines.offset)
            continue
        yield Record(first, cells, lines.problem, lines.offset)


def _too_long(first: int, last: int) -> str:
    return (
        f"the record from line {first} runs over {last - first + 1} lines or "
        f"{MAX_RECORD_BYTES // 1024} KiB (an unclosed quote?)"
    )
