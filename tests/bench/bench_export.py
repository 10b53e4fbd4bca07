"""Exporting an inventory to files, against PostgreSQL: rows/s beside references measured in
the same run, and each export's peak RSS.

The inventory (``--rows`` vehicles, a million by default) is generated in the database by one
``INSERT ... SELECT`` with messy values: quotes, delimiters and line breaks in descriptions,
text outside ASCII, missing values, ten photo URLs a vehicle. Each export runs in a forked child,
as a worker would, through ``exports.entities`` and ``exports.formats`` into a local file; its
peak RSS is the child's.

- CSV against PostgreSQL's own ``COPY (SELECT <the same columns>) TO STDOUT WITH CSV`` into a
  file (target: at least 0.5x its rows/s);
- Parquet against pyarrow writing the same rows from an in-memory table (``pq.write_table``,
  same codec and row groups; target 0.5x). That reference does not read the database at all,
  so the run also prints the database's share: COPY of the same rows as the export reads them;
- every format's peak RSS at most 512 MB;
- end to end, an export *run* (``exports.runs``: the lifecycle's claim, checkpoints and the
  atomic upload, the files recorded) of the same vehicles as CSV, in a forked child as a worker:
  to LOCAL against the same COPY (target 0.5x), to S3 (moto's server on loopback) against a
  plain boto3 ``upload_file`` of the finished file, and to SFTP (OpenSSH's sshd on loopback)
  against a plain paramiko ``put`` of it; bytes/s for the remote ones.

The benchmark runs in a throwaway test database (``test_<name>``), created and migrated here and
dropped afterwards.
"""

from __future__ import annotations

import multiprocessing
import resource
import shutil
import time
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from django.db import connection
from django.test.utils import setup_databases, teardown_databases

from accounts.models import Account, Dealership
from accounts.services import Actor
from connectors.services import connection_create
from exports.entities import VEHICLE_SOURCE_FIELDS, VEHICLES, entity_source
from exports.formats import format_options, write_parts
from exports.models import Export
from integrations.models import Integration
from syncengine.jobs import lifecycle
from syncengine.models import SyncJob, Vehicle

TARGET = 0.5
RSS_LIMIT_MB = 512
FORMATS: list[tuple[str, dict[str, Any]]] = [
    ("CSV", {}),
    ("CSV", {"compression": "gzip"}),
    ("PARQUET", {}),
    ("JSON", {"jsonLines": True}),
    ("XML", {}),
]

_GENERATE = """
INSERT INTO {table} (
    id, account_id, integration_id, dealership_id, key, status, vin, stock_number, condition,
    year, make, model, trim, body_style, exterior_color, interior_color, mileage, price, msrp,
    invoice, book_value, currency, in_stock_date, certified, engine, transmission, drivetrain,
    fuel_type, doors, description, features, photo_urls, vdp_url, extra, content_hash,
    missing_syncs, first_seen_at, last_seen_at, sold_at, created_at, updated_at
)
SELECT
    gen_random_uuid(), %(account)s, %(integration)s, %(dealership)s,
    '1FTW' || lpad(n::text, 13, '0'), 'active', '1FTW' || lpad(n::text, 13, '0'),
    lpad((n %% 10000000)::text, 7, '0'),
    CASE WHEN n %% 3 = 0 THEN 'new' ELSE 'used' END,
    (2012 + n %% 14)::int,
    (ARRAY['Ford', 'Toyota', 'Honda', 'Chevrolet', 'Škoda'])[1 + n %% 5],
    'Model ' || (n %% 17),
    CASE WHEN n %% 11 = 0 THEN NULL ELSE 'Trim "' || (n %% 7) || '"' END,
    'Sedan', 'Red, Metallic', CASE WHEN n %% 4 = 0 THEN '' ELSE 'Black' END,
    (3000 + (n * 7919) %% 137000)::int,
    9000 + (n * 31) %% 66000 + 0.99, 12000 + (n * 37) %% 70000, NULL,
    round((9000 + (n * 31) %% 66000) * 0.87, 2), 'USD',
    date '2025-01-01' + (n %% 365)::int, CASE WHEN n %% 7 = 0 THEN NULL ELSE n %% 5 = 0 END,
    '2.0L I4', 'Automatic', 'AWD', 'Gasoline', 4,
    'Clean carfax; one "owner", call us ☎ ' || n || E'\\nSecond line,\\twith a tab',
    '["Sunroof", "Heated Seats", "Bluetooth", "Navigation"]'::jsonb,
    (SELECT jsonb_agg('https://p.rly.io/' || n || '/' || photo || '.jpg')
       FROM generate_series(1, 10) AS photo),
    'https://example-motors.com/v/' || n,
    jsonb_build_object('Dealer ID', '48213', 'Lot', n %% 3),
    n, 0, now(), now(), CASE WHEN n %% 13 = 0 THEN now() END, now(), now()
FROM generate_series(1::bigint, %(rows)s) AS n
"""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _export_in_child(
    account_id: Any, format_: str, options: dict[str, Any], path: str, pipe: Pipe
) -> None:
    started = time.perf_counter()
    account = Account.objects.get(pk=account_id)
    source = entity_source(account=account, entity=VEHICLES)
    parsed = format_options(format_, options)
    files: list[str] = []

    def open_sink(number: int) -> Any:
        name = path if number == 1 else f"{path}.{number}"
        files.append(name)
        return open(name, "wb")

    parts = write_parts(
        parsed, columns=source.columns, rows=source.stream(parsed), open_sink=open_sink
    )
    seconds = time.perf_counter() - started
    pipe.send((seconds, sum(p.rows for p in parts), sum(p.bytes for p in parts), _peak_rss_mb()))
    pipe.close()


def _export(
    account_id: Any, format_: str, options: dict[str, Any], path: Path
) -> tuple[float, int, int, float]:
    """One export in a forked child (a fresh worker's memory): seconds, rows, bytes, peak MB."""
    connection.close()  # the child opens its own connection
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_export_in_child, args=(account_id, format_, options, str(path), sender)
    )
    child.start()
    result: tuple[float, int, int, float] = receiver.recv()
    child.join()
    return result


def _rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _run_in_child(export_id: Any, pipe: Pipe) -> None:
    # A forked child starts with its parent's resident pages (the Parquet reference table,
    # moto's stored objects): what the run itself adds is the peak less this.
    inherited = _rss_now_mb()
    started = time.perf_counter()
    export = Export.objects.get(pk=export_id)
    run = lifecycle.run_create(
        kind="export", dispatch=False, account_id=export.account_id, export=export, trigger="manual"
    )
    lifecycle.run_execute(run.pk)
    seconds = time.perf_counter() - started
    done = SyncJob.objects.get(pk=run.pk)
    files = list(done.export_files.order_by("number").values_list("uri", "bytes", "rows"))
    pipe.send((seconds, done.status, done.error, files, _peak_rss_mb() - inherited))
    pipe.close()


def _export_run(export: Export) -> tuple[float, str, str, list[Any], float]:
    """One export run, worked in a forked child as a worker works it."""
    connection.close()
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_run_in_child, args=(export.pk, sender))
    child.start()
    result: tuple[float, str, str, list[Any], float] = receiver.recv()
    child.join()
    return result


def _copy_to_file(sql: str, path: Path, params: Any = None) -> tuple[float, int]:
    started = time.perf_counter()
    size = 0
    with (
        connection.cursor() as cursor,
        open(path, "wb") as out,
        cursor.cursor.copy(sql, params) as copy,
    ):
        for data in copy:
            out.write(data)
            size += len(data)
    return time.perf_counter() - started, size


def run(args: Any) -> None:
    """Generate the inventory, export it in every format and print rates, ratios and RSS."""
    if connection.vendor != "postgresql":
        print("bench_export: skipped, it needs PostgreSQL (set DATABASE_URL=postgres://...).")
        return
    workdir = Path(args.workdir or "/tmp/railyard-bench") / "bench_export"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        _run(int(args.rows), workdir)
    finally:
        connection.close()
        teardown_databases(old_config, verbosity=0)
        shutil.rmtree(workdir, ignore_errors=True)


def _run(rows: int, workdir: Path) -> None:
    account = Account.objects.create(name="Bench Motors Group")
    dealership = Dealership.objects.create(account=account, name="Bench Motors")
    integration = Integration.objects.create(
        account=account, dealership=dealership, name="Bench feed", type="vauto"
    )
    table = connection.ops.quote_name(Vehicle._meta.db_table)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            _GENERATE.format(table=table),
            {
                "account": account.pk,
                "integration": integration.pk,
                "dealership": dealership.pk,
                "rows": rows,
            },
        )
        cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone() or ("?",)
    print(
        f"rows: {rows:,}; PostgreSQL {version}; generated in {time.perf_counter() - started:.0f} s"
    )

    # The reference: the same columns, as PostgreSQL prints them, straight into a file.
    columns = ", ".join(
        connection.ops.quote_name(field.lookup or name)
        for name, field in VEHICLE_SOURCE_FIELDS.items()
    )
    copy_sql = (
        f"COPY (SELECT {columns} FROM {table} WHERE account_id = %s) "
        "TO STDOUT WITH (FORMAT csv, HEADER)"
    )
    _copy_to_file(copy_sql, workdir / "warm.csv", [account.pk])  # both sides start warm
    reference_s, reference_bytes = _copy_to_file(copy_sql, workdir / "reference.csv", [account.pk])
    reference_rate = rows / reference_s
    print(
        f"{'COPY ... TO STDOUT (reference)':>32}: {reference_rate:>9,.0f} rows/s"
        f" ({reference_s:5.1f} s, {reference_bytes / 1e6:,.0f} MB)"
    )

    failures = []
    results: dict[str, tuple[float, Path]] = {}
    for format_, options in FORMATS:
        label = format_ + "".join(f" {key}={value}" for key, value in options.items())
        path = workdir / f"export-{len(results)}.{format_.lower()}"
        seconds, written, size, peak = _export(account.pk, format_, options, path)
        results[label] = (seconds, path)
        rss_ok = peak <= RSS_LIMIT_MB
        if not rss_ok:
            failures.append(f"{label} RSS")
        if written != rows:
            failures.append(f"{label} rows")
        line = (
            f"{label:>32}: {rows / seconds:>9,.0f} rows/s ({seconds:5.1f} s,"
            f" {size / 1e6:,.0f} MB); peak RSS {peak:4.0f} MB ({'ok' if rss_ok else 'MISSED'})"
        )
        if label == "CSV":
            ratio = (rows / seconds) / reference_rate
            if ratio < TARGET:
                failures.append("CSV rate")
            line += (
                f" | {ratio:4.2f}x COPY (target {TARGET}x: {'ok' if ratio >= TARGET else 'MISSED'})"
            )
        print(line, flush=True)
        if label != "PARQUET":
            path.unlink()

    # Parquet: pyarrow writing the same rows from a table already in memory.
    parquet_s, parquet_path = results["PARQUET"]
    in_memory = pq.read_table(parquet_path)
    group = pq.ParquetFile(parquet_path).metadata.row_group(0).num_rows
    started = time.perf_counter()
    pq.write_table(
        in_memory, workdir / "reference.parquet", compression="snappy", row_group_size=group
    )
    write_s = time.perf_counter() - started
    ratio = write_s / parquet_s
    if ratio < TARGET:
        failures.append("Parquet rate")
    print(
        f"{'pyarrow write_table (reference)':>32}: {rows / write_s:>9,.0f} rows/s"
        f" ({write_s:5.1f} s) | export {ratio:4.2f}x"
        f" (target {TARGET}x: {'ok' if ratio >= TARGET else 'MISSED'})"
    )
    floor = reference_s + write_s
    print(
        f"{'COPY + write_table':>32}: {rows / floor:>9,.0f} rows/s ({floor:5.1f} s):"
        f" reading the rows out of PostgreSQL, then writing them | export {floor / parquet_s:4.2f}x"
    )
    del in_memory
    failures += _runs(account, rows, reference_rate, workdir)
    if failures:
        print(f"bench_export: targets missed: {', '.join(failures)}")


def _runs(account: Account, rows: int, reference_rate: float, workdir: Path) -> list[str]:
    """End-to-end export runs (CSV) to LOCAL, S3 and SFTP, each against its reference."""
    from django.conf import settings

    failures: list[str] = []
    settings.EXPORT_LOCAL_DIR = workdir / "local"
    local = Export.objects.create(
        account=account,
        name="bench",
        format="CSV",
        entities=[VEHICLES],
        destination={
            "type": "LOCAL",
            "path": "runs",
            "fileNameTemplate": "{{entity}}-{{part}}.csv",
        },
    )
    seconds, status, error, files, peak = _export_run(local)
    if status != "COMPLETED" or sum(file[2] for file in files) != rows:
        return [f"LOCAL run {status}: {error}"]
    ratio = (rows / seconds) / reference_rate
    if ratio < TARGET:
        failures.append("LOCAL run rate")
    size = sum(file[1] for file in files)
    print(
        f"{'run CSV -> LOCAL':>32}: {rows / seconds:>9,.0f} rows/s ({seconds:5.1f} s,"
        f" {size / 1e6:,.0f} MB in {len(files)} file(s)); RSS added {peak:4.0f} MB"
        f" | {ratio:4.2f}x COPY (target {TARGET}x: {'ok' if ratio >= TARGET else 'MISSED'})",
        flush=True,
    )
    finished = [
        Path(settings.EXPORT_LOCAL_DIR) / str(account.pk) / uri.removeprefix("local:")
        for uri, _, _ in files
    ]
    for name, bench in (("S3", _s3_run), ("SFTP", _sftp_run)):
        try:
            bench(account, finished, size)
        except Exception as error:  # a server that cannot run here skips, with the reason
            print(f"{'run CSV -> ' + name:>32}: skipped ({type(error).__name__}: {error})")
    return failures


def _print_remote(label: str, seconds: float, size: float, reference_s: float, peak: float) -> None:
    rate, reference = size / seconds, size / reference_s
    print(
        f"{label:>32}: {rate / 1e6:>7,.1f} MB/s ({seconds:5.1f} s); RSS added {peak:4.0f} MB"
        f" | plain client {reference / 1e6:,.1f} MB/s ({reference_s:5.1f} s):"
        f" {rate / reference:4.2f}x",
        flush=True,
    )


def _s3_run(account: Account, finished: list[Path], size: int) -> None:
    from tests.servers import _once, _start_moto

    server = _once("moto S3 server", _start_moto)
    client = server.client()
    client.create_bucket(
        Bucket="bench-exports", CreateBucketConfiguration={"LocationConstraint": server.region}
    )
    s3 = connection_create(
        account=account,
        actor=Actor.system(),
        connector_id="s3",
        name="bench s3",
        config={"bucket": "bench-exports", "region": server.region, "endpointUrl": server.endpoint},
        credentials=server.admin,
    )
    export = Export.objects.create(
        account=account,
        name="bench-s3",
        format="CSV",
        entities=[VEHICLES],
        destination={"type": "S3", "connectionId": str(s3.pk), "bucket": "bench-exports"},
    )
    seconds, status, error, files, peak = _export_run(export)
    if status != "COMPLETED":
        raise RuntimeError(f"run {status}: {error}")
    for uri, _, _ in files:
        client.delete_object(Bucket="bench-exports", Key=uri.removeprefix("s3://bench-exports/"))
    started = time.perf_counter()
    for number, path in enumerate(finished):
        client.upload_file(str(path), "bench-exports", f"reference/{number}.csv")
    reference_s = time.perf_counter() - started
    _print_remote("run CSV -> S3 (moto)", seconds, size, reference_s, peak)


def _sftp_run(account: Account, finished: list[Path], size: int) -> None:
    import io

    import paramiko

    from tests.servers import _once, _start_sshd

    server = _once("OpenSSH sshd", _start_sshd)
    folder = server.workspace / "bench"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    sftp = connection_create(
        account=account,
        actor=Actor.system(),
        connector_id="sftp",
        name="bench sftp",
        config={
            "host": server.host,
            "port": server.port,
            "username": server.username,
            "hostKey": server.host_key,
            "directory": str(folder),
        },
        credentials={"privateKey": server.private_key},
    )
    export = Export.objects.create(
        account=account,
        name="bench-sftp",
        format="CSV",
        entities=[VEHICLES],
        destination={"type": "SFTP", "connectionId": str(sftp.pk), "prefix": "run"},
    )
    try:
        seconds, status, error, _files, peak = _export_run(export)
        if status != "COMPLETED":
            raise RuntimeError(f"run {status}: {error}")
        key = paramiko.Ed25519Key.from_private_key(io.StringIO(server.private_key))
        ssh = paramiko.SSHClient()
        ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - loopback bench
        ssh.connect(server.host, port=server.port, username=server.username, pkey=key)
        try:
            client = ssh.open_sftp()
            started = time.perf_counter()
            for number, path in enumerate(finished):
                client.put(str(path), str(folder / f"reference-{number}.csv"))
            reference_s = time.perf_counter() - started
        finally:
            ssh.close()
        _print_remote("run CSV -> SFTP (sshd)", seconds, size, reference_s, peak)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
