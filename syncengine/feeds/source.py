"""Opening an uploaded feed file as a stream of UTF-8 bytes for pandas' C parser.

Uploads arrive plain, gzip-compressed or zipped (recognised by their first bytes, never by name),
in UTF-8 with or without a byte order mark, in Windows-1252 (Excel's "CSV" on a US Windows
machine) or, rarely, UTF-16 with a byte order mark. ``FeedStream`` decompresses and transcodes in
1 MiB blocks, so memory stays flat whatever the file's size, and hands pandas UTF-8 bytes. Valid
UTF-8 (the common case) passes through unchanged after a validity check.
"""

from __future__ import annotations

import codecs
import gzip
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from syncengine.feeds.errors import FeedFileError

BLOCK_SIZE = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
UTF8_BOM = codecs.BOM_UTF8
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
LINE_BREAKS = (b"\n", b"\r")


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...
    def close(self) -> None: ...


# Windows-1252 leaves five bytes undefined; browsers (WHATWG) read them as the C1 control with
# the same number, and so do we, so that decoding a legacy file never fails.
_WINDOWS_1252 = "".join(
    bytes([byte]).decode("cp1252", errors="ignore") or chr(byte) for byte in range(256)
)
WINDOWS_1252_LABELS = frozenset({"cp1252", "windows-1252", "windows1252"})


def decode_windows_1252(data: bytes) -> str:
    """``data`` read as Windows-1252, with the five undefined bytes as C1 controls."""
    return codecs.charmap_decode(data, "strict", _WINDOWS_1252)[0]


def _windows_1252_fallback(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: read a byte sequence that is not UTF-8 as Windows-1252.

    A mostly-UTF-8 file with a few Windows-1252 bytes (a row pasted from an older system) keeps
    its UTF-8 text and gets the odd byte right, instead of failing or turning into mojibake.
    """
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return decode_windows_1252(error.object[error.start : error.end]), error.end


FALLBACK_ERRORS = "railyard-windows-1252-fallback"
codecs.register_error(FALLBACK_ERRORS, _windows_1252_fallback)


def _incomplete_utf8_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` start a UTF-8 sequence the block cut in two."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the sequence's lead (or ASCII)
            if byte >= 0xF0:
                needed = 4
            elif byte >= 0xE0:
                needed = 3
            elif byte >= 0xC0:
                needed = 2
            else:
                needed = 1
            return back if needed > back else 0
    return 0


def _open_raw(path: Path) -> tuple[_Readable, list[Callable[[], None]], str]:
    """The file's content as a binary stream, decompressed; its closers; how it was packed."""
    with open(path, "rb") as probe:
        magic = probe.read(4)
    if magic.startswith(GZIP_MAGIC):
        return gzip.open(path, "rb"), [], "gzip"
    if magic in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
        return _open_zip_member(path)
    file = open(path, "rb")  # noqa: SIM115 - closed by FeedStream.close
    return file, [], ""


def _open_zip_member(path: Path) -> tuple[_Readable, list[Callable[[], None]], str]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FeedFileError(f"The file is not a readable zip archive ({exc}).") from exc
    # Archives made on a Mac carry resource-fork copies under __MACOSX/; they are never the feed.
    members = [
        info
        for info in archive.infolist()
        if not info.is_dir() and not info.filename.startswith("__MACOSX/")
    ]
    if not members:
        archive.close()
        raise FeedFileError("The zip archive has no file in it.")
    member = max(members, key=lambda info: info.file_size)  # the single or the largest file
    try:
        stream: _Readable = archive.open(member)
        # A zipped .csv.gz happens (a partner's script compresses, its SFTP client zips).
        if stream.read(2) == GZIP_MAGIC:
            stream.close()
            inner = archive.open(member)
            return gzip.GzipFile(fileobj=inner), [inner.close, archive.close], "zip+gzip"
        stream.close()
        stream = archive.open(member)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as exc:
        archive.close()
        raise FeedFileError(f"The zip archive cannot be read ({exc}).") from exc
    return stream, [archive.close], f"zip member {member.filename!r}"


class FeedStream:
    """A feed file as UTF-8 bytes, read block by block; a file-like object for ``pd.read_csv``.

    Use ``head()`` to look at the start (detection), then ``begin()`` to read it for parsing:
    ``begin`` replaces the header with a synthetic one, and at the end of a file that does not
    end with a line break appends a marker field so the reader can tell how many fields the last
    row really had (see ``reader.py``).
    """

    def __init__(self, path: Path, *, encoding: str | None) -> None:
        self._raw, self._closers, self.packing = _open_raw(path)
        self._requested = encoding
        self._mode = ""  # "utf-8" | "windows-1252" | "codec", set by the first block
        self.encoding_label = ""
        self._decoder: codecs.IncrementalDecoder | None = None
        self._carry = b""  # the start of a UTF-8 sequence cut by the end of a block
        self._raw_offset = 0
        self._raw_done = False
        self._head: list[bytes] = []
        self._head_size = 0
        self._pending: list[bytes] = []
        self._offset = 0
        self._reading = False
        self._marker = b""
        self._data_seen = False
        self._last_byte = b""
        self.marker_appended = False
        self.warnings: list[str] = []

    # --- decoding ------------------------------------------------------------------------------

    def _read_raw(self) -> bytes:
        try:
            block = self._raw.read(BLOCK_SIZE)
        except (EOFError, zlib.error, zipfile.BadZipFile) as exc:
            raise FeedFileError(
                f"The compressed upload ({self.packing}) is damaged or cut short ({exc})."
            ) from exc
        except OSError as exc:
            if not self.packing:
                raise  # a disk error, not a bad upload
            raise FeedFileError(
                f"The compressed upload ({self.packing}) is damaged ({exc})."
            ) from exc
        self._raw_offset += len(block)
        return block

    def _start(self, block: bytes) -> bytes:
        """Decide the encoding from the first block (BOM, else a strict UTF-8 check)."""
        requested = self._requested
        if block.startswith(UTF8_BOM):
            if requested and requested != "utf-8":
                self.warnings.append(
                    f"The file starts with a UTF-8 byte order mark, so it was read as UTF-8, "
                    f"not {requested} as the file options say."
                )
            self._mode, self.encoding_label = "utf-8", "UTF-8 (with BOM)"
            return block[len(UTF8_BOM) :]
        if block.startswith(UTF16_BOMS) and requested in (None, "utf-16"):
            self._mode, self.encoding_label = "codec", "UTF-16"
            self._decoder = codecs.getincrementaldecoder("utf-16")()
            return block
        if requested is None:
            sample = block[: len(block) - _incomplete_utf8_tail(block)]
            if sample.count(0) > len(sample) // 1000:
                raise FeedFileError(
                    "The file is not a text file (it is full of NUL bytes); upload the feed as "
                    "CSV or another delimited text file."
                )
            try:
                sample.decode("utf-8")
            except UnicodeDecodeError:
                # Not UTF-8 throughout. If it has no valid multi-byte UTF-8 at all, it is a
                # Windows-1252 file; if it has both, it is UTF-8 with a few Windows-1252 bytes
                # pasted in, and only those are read as Windows-1252 (see _transcode).
                text = sample.decode("utf-8", errors="replace")
                if any(char > "\x7f" and char != "\ufffd" for char in text):
                    self._mode, self.encoding_label = "utf-8", "UTF-8"
                else:
                    self._mode, self.encoding_label = "windows-1252", "Windows-1252"
            else:
                self._mode, self.encoding_label = "utf-8", "UTF-8"
        elif requested == "utf-8":
            self._mode, self.encoding_label = "utf-8", "UTF-8"
        elif requested in WINDOWS_1252_LABELS:
            self._mode, self.encoding_label = "windows-1252", "Windows-1252"
        else:
            self._mode, self.encoding_label = "codec", requested
            self._decoder = codecs.getincrementaldecoder(requested)()
        return block

    def _transcode(self, block: bytes, *, final: bool) -> bytes:
        if self._mode == "windows-1252":
            return decode_windows_1252(block).encode("utf-8")
        if self._mode == "codec":
            assert self._decoder is not None
            try:
                return self._decoder.decode(block, final).encode("utf-8")
            except UnicodeDecodeError as exc:
                raise FeedFileError(
                    f"The file cannot be read as {self.encoding_label} ({exc.reason} near byte "
                    f"{self._raw_offset - len(block) + exc.start})."
                ) from exc
        start = self._raw_offset - len(block) - len(self._carry)  # file offset of data[0]
        data = self._carry + block if self._carry else block
        cut = len(data) if final else len(data) - _incomplete_utf8_tail(data)
        if cut < len(data):
            data, self._carry = data[:cut], data[cut:]
        else:
            self._carry = b""
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            position = start + exc.start
            if self._requested == "utf-8":
                raise FeedFileError(
                    f"The file is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
                    f"{position}), though the file options say UTF-8."
                ) from exc
            if not any("not valid UTF-8" in warning for warning in self.warnings):
                self.warnings.append(
                    f"Some bytes are not valid UTF-8 (the first at offset {position}); they "
                    "were read as Windows-1252."
                )
            return data.decode("utf-8", errors=FALLBACK_ERRORS).encode("utf-8")
        return data

    def _next_block(self) -> bytes | None:
        """The next block of UTF-8 output; None at the end of the file."""
        while not self._raw_done:
            block = self._read_raw()
            if not block:
                self._raw_done = True
                if not self._mode:  # an empty file
                    self._mode, self.encoding_label = "utf-8", "UTF-8"
                return self._transcode(b"", final=True) or None
            if not self._mode:
                block = self._start(block)
            out = self._transcode(block, final=False)
            if out:
                return out
        return None

    # --- detection -----------------------------------------------------------------------------

    def head(self, size: int) -> tuple[bytes, bool]:
        """The first ``size`` bytes of output (fewer at the end), and whether that is all."""
        while self._head_size < size:
            block = self._next_block()
            if block is None:
                break
            self._head.append(block)
            self._head_size += len(block)
        data = b"".join(self._head)
        if len(self._head) > 1:
            self._head = [data]
        return data[:size], self._raw_done and self._head_size <= size

    # --- reading -------------------------------------------------------------------------------

    def begin(self, *, skip: int, prefix: bytes, marker: bytes) -> None:
        """Read from here on as: ``prefix``, then the output after its first ``skip`` bytes.

        ``marker`` is appended at the end when the file's last row has no line break.
        """
        data = b"".join(self._head)
        self._head, self._head_size = [], 0
        self._pending = [prefix]
        self._offset = 0
        self._marker = marker
        self._reading = True
        self._track(data[skip:])

    def _track(self, block: bytes) -> None:
        if not block:
            return
        self._pending.append(block)
        if not self._data_seen and not block.isspace():
            self._data_seen = True
        tail = block[-64:].rstrip(b" \t") or block.rstrip(b" \t")
        if tail:
            self._last_byte = tail[-1:]

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (the parser asks for 256 KiB at a time); b"" at the end."""
        while not self._pending:
            block = self._next_block()
            if block is None:
                if (
                    self._reading
                    and self._data_seen
                    and not self.marker_appended
                    and self._last_byte not in LINE_BREAKS
                ):
                    self.marker_appended = True
                    return self._marker
                return b""
            self._track(block)
        block = self._pending[0]
        if size < 0 or size >= len(block) - self._offset:
            out = block[self._offset :] if self._offset else block
            self._pending.pop(0)
            self._offset = 0
            return out
        out = block[self._offset : self._offset + size]
        self._offset += size
        return out

    def __iter__(self) -> FeedStream:
        # pandas recognises a file-like object by ``read`` and ``__iter__``; it only calls read.
        return self

    def __next__(self) -> bytes:
        raise StopIteration

    def close(self) -> None:
        """Close the file and any archive it came from."""
        self._raw.close()
        for close in self._closers:
            close()
        self._closers = []
