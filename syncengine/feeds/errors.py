"""The one error a feed file can fail with as a whole."""

from __future__ import annotations


class FeedFileError(Exception):
    """The whole file is unusable: empty (0 bytes), header-only, truncated (unterminated quote at
    EOF, or a short last row without a final newline), undecodable, a bad gzip/zip, or no column
    that maps to vin or stockNumber. ``str(exc)`` is a clear sentence for a human."""
