"""Text that comes from the network, made safe to show, and names cut to what a file system holds.

Usernames, file names, commands and forwarding targets are chosen by the client. Written into a
log line or an activity record as they are, a name holding a newline would start a line of its
own that looks like the gateway's (a forged "SFTP login ..."), and bidirectional or invisible
characters would show one name as another. ``printable`` escapes them, and the backslash too so
that an escape cannot be faked either.
"""

from __future__ import annotations

import logging
import unicodedata

# Bytes in one name (one path component) on Linux and most file systems (NAME_MAX).
NAME_MAX_BYTES = 255

_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Control, format (bidirectional overrides, zero-width), line and paragraph separators,
# surrogates, private-use and unassigned code points.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if unicodedata.category(char) not in _ESCAPED_CATEGORIES:
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(value: object) -> str:
    """``value`` as one line of visible text: control and invisible characters as escapes."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and "\\" not in text:
        return text  # the common case, without a pass per character
    return "".join(_escape(char) for char in text)


def cut_bytes(text: str, limit: int) -> str:
    """The longest start of ``text`` whose UTF-8 encoding fits in ``limit`` bytes.

    File systems count a name's bytes, not its characters; the cut never splits a character.
    """
    encoded = text.encode("utf-8", "surrogateescape")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", "ignore")


def name_bytes(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))


class PrintableLogRecords(logging.Filter):
    """Makes every record of the logger it is attached to one line of visible text.

    The whole message is escaped after formatting, so no call site can forget a client-supplied
    argument. Tracebacks are left alone: Python prints the strings in them with ``repr``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the handler report it as logging does
            return True
        escaped = printable(message)
        if escaped != message:
            record.msg = escaped
            record.args = None
        return True


def escape_log_records(*logger_names: str) -> None:
    """Attach ``PrintableLogRecords`` to these loggers (once each)."""
    for name in logger_names:
        target = logging.getLogger(name)
        if not any(isinstance(f, PrintableLogRecords) for f in target.filters):
            target.addFilter(PrintableLogRecords())
