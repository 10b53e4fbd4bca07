"""The feed reader (open_feed + every chunk) against plain ``pd.read_csv``, on a vAuto-style feed.

The feed (``feedgen.write_vauto_feed``: 25 columns, about 815 bytes per row) is generated once
per row count into the work directory and reused. Each measurement runs in a fresh process with
Django set up, as in a worker, so that its peak RSS (``resource.getrusage``) is its own and not
whatever an earlier benchmark of the same run left behind:

- the reference: ``pd.read_csv(path)`` with the C engine, whole file, default options (what
  PERFORMANCE.md measures: ~795k rows/s and ~1.9 GB at a million rows);
- the reader: ``open_feed`` with the orchestrator's defaults and its chunks fully iterated, the
  previous chunk still referenced while the next is built (as the orchestrator's loop does).

Targets: the whole read and normalisation of a million rows well under 20 s, and the process
well under 1 GB.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tests.bench.feedgen import write_vauto_feed

TIME_LIMIT_PER_MILLION_S = 20.0
RSS_LIMIT_MB = 1024


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(kind: str, path: str, conn: Connection) -> None:
    """Child process: read the feed one way and send back (rows, seconds, peak RSS in MB)."""
    import django

    django.setup()
    import pandas as pd

    from syncengine.feeds.reader import FeedOptions, open_feed

    started = time.perf_counter()
    if kind == "reference":
        rows = len(pd.read_csv(path))
    else:
        rows = rejected = 0
        with open_feed(
            Path(path),
            provider="vauto",
            options=FeedOptions(),
            mapping_overrides={},
            timezone="America/Chicago",
        ) as reader:
            for chunk in reader.chunks():
                rows += len(chunk.frame)
                rejected += len(chunk.rejected)
        rows += rejected
    conn.send((rows, time.perf_counter() - started, peak_rss_mb()))
    conn.close()


def _in_child(kind: str, path: Path) -> tuple[int, float, float]:
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_measure, args=(kind, str(path), sender))
    process.start()
    sender.close()
    result: tuple[int, float, float] = receiver.recv()
    process.join()
    return result


def feed_path(workdir: Path, rows: int) -> Path:
    """The generated feed of ``rows`` rows, written on first use."""
    path = workdir / f"vauto_{rows}.csv"
    if not path.exists():
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        write_vauto_feed(partial, rows, seed=0)
        partial.rename(path)
        print(f"generated {path} in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def run(args: Any) -> None:
    """Time both reads of the same file and print rows/s, their ratio and peak RSS."""
    rows = int(args.rows)
    workdir = Path(args.workdir or tempfile.gettempdir()) / "bench_parse"
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    path = feed_path(workdir, rows)
    size_mb = path.stat().st_size / 1e6
    print(f"feed: {rows:,} rows, {size_mb:,.0f} MB ({size_mb * 1e6 / rows:.0f} bytes per row)")

    # The reference runs first and so also warms the page cache for the reader.
    reference_rows, reference_s, reference_rss = _in_child("reference", path)
    reader_rows, reader_s, reader_rss = _in_child("reader", path)
    assert reference_rows == reader_rows == rows, (reference_rows, reader_rows, rows)

    reference_rate = rows / reference_s
    reader_rate = rows / reader_s
    print(
        f"reference pd.read_csv (C engine, whole file): {reference_s:6.2f} s"
        f" {reference_rate:>11,.0f} rows/s  peak RSS {reference_rss:,.0f} MB"
    )
    print(
        f"open_feed + chunks (read and normalise):     {reader_s:6.2f} s"
        f" {reader_rate:>11,.0f} rows/s  peak RSS {reader_rss:,.0f} MB"
    )
    print(
        f"ratio (reader rows/s / reference rows/s): {reader_rate / reference_rate:.2f}"
        f" (the reader takes {reader_s / reference_s:.1f}x the time of a bare parse)"
    )
    time_limit = TIME_LIMIT_PER_MILLION_S * rows / 1_000_000
    time_verdict = "ok" if reader_s < time_limit else "MISSED"
    rss_verdict = "ok" if reader_rss < RSS_LIMIT_MB else "MISSED"
    print(f"reader time {reader_s:.1f} s (limit {time_limit:.1f} s: {time_verdict})")
    print(f"reader peak RSS {reader_rss:,.0f} MB (limit {RSS_LIMIT_MB} MB: {rss_verdict})")
