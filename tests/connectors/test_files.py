"""The local destination (an account's export folder) and the atomic upload every destination
shares: what is visible on disk during, after and instead of a delivery."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from pathlib import Path

import pytest

from connectors.azure_blob import AzureBlobConnector
from connectors.files import (
    FileDestination,
    FileSource,
    LocalDestination,
    file_destination_for,
    file_source_for,
    relative_path_clean,
)
from connectors.registry import ConnectorError, all_connectors
from connectors.s3 import S3Connector
from connectors.sftp import SftpConnector
from connectors.sftp_pull import SftpPullConnector
from tests.connectors.storage_support import chunks, upload_and_break


@pytest.fixture
def data_dir(settings, tmp_path) -> Path:
    settings.DATA_DIR = tmp_path / "var"
    settings.EXPORT_LOCAL_DIR = settings.DATA_DIR / "exports"
    return settings.DATA_DIR


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("a.csv", "a.csv"),
        ("./a//b/./c.csv", "a/b/c.csv"),
        ("vehicles/2025-01-01 stock+list.csv", "vehicles/2025-01-01 stock+list.csv"),
    ],
)
def test_relative_paths_are_normalised(path, clean):
    assert relative_path_clean(path) == clean


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "File path is empty."),
        ("./", "File path is empty."),
        (
            "/etc/passwd",
            "File path '/etc/passwd' is absolute; paths are relative to the destination.",
        ),
        ("../b.csv", "File path '../b.csv' leaves the destination folder (..)."),
        ("a/../../b.csv", "File path 'a/../../b.csv' leaves the destination folder (..)."),
        (
            "a\\..\\b.csv",
            "File path 'a\\\\..\\\\b.csv' contains a backslash or a control character.",
        ),
        ("a\nb.csv", "File path 'a\\nb.csv' contains a backslash or a control character."),
    ],
)
def test_paths_that_could_leave_the_root_are_refused(path, message):
    with pytest.raises(ConnectorError) as raised:
        relative_path_clean(path)

    assert raised.value.message == message
    assert raised.value.retryable is False


def test_a_local_upload_lands_in_the_accounts_export_folder(data_dir):
    destination = LocalDestination(account_id="acct_1", prefix="nightly")
    content = b"id,name\n1,Civic\n"

    with destination.upload("vehicles/2025-01-01.csv") as sink:
        sink.write(content)

    target = data_dir / "exports" / "acct_1" / "nightly" / "vehicles" / "2025-01-01.csv"
    assert target.read_bytes() == content
    assert files_under(data_dir) == ["exports/acct_1/nightly/vehicles/2025-01-01.csv"]
    assert sink.delivered.as_dict() == {
        "uri": "local:nightly/vehicles/2025-01-01.csv",
        "path": "vehicles/2025-01-01.csv",
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    with destination.open("vehicles/2025-01-01.csv") as delivered:
        assert delivered.read() == content


def test_a_local_upload_is_a_hidden_temporary_file_until_it_completes(data_dir):
    destination = LocalDestination(account_id="acct_1")
    folder = data_dir / "exports" / "acct_1"
    seen_while_writing: list[list[str]] = []

    with destination.upload("report.csv") as sink:
        for number, chunk in enumerate(chunks(3 * 1024 * 1024)):
            sink.write(chunk)
            if number == 1:
                seen_while_writing.append(os.listdir(folder))

    [[temporary]] = seen_while_writing
    assert temporary.startswith(".report.csv.")
    assert temporary.endswith(".part")
    assert os.listdir(folder) == ["report.csv"]
    assert (folder / "report.csv").stat().st_size == 3 * 1024 * 1024


def test_a_failed_local_upload_leaves_nothing_and_keeps_the_previous_file(data_dir):
    destination = LocalDestination(account_id="acct_1")
    with destination.upload("report.csv") as sink:
        sink.write(b"the previous report")

    replaced = upload_and_break(destination, "report.csv", 2 * 1024 * 1024)
    fresh = upload_and_break(destination, "new/report.csv", 1024)

    folder = data_dir / "exports" / "acct_1"
    assert files_under(folder) == ["report.csv"]
    assert (folder / "report.csv").read_bytes() == b"the previous report"
    for sink in (replaced, fresh):
        with pytest.raises(ValueError, match="aborted"):
            sink.delivered  # noqa: B018


@pytest.mark.parametrize("path", ["../acct_2/report.csv", "/tmp/report.csv", "a/../../x.csv"])
def test_a_local_path_cannot_reach_another_account_or_the_system(data_dir, path):
    destination = LocalDestination(account_id="acct_1")

    with pytest.raises(ConnectorError):
        destination.upload(path)

    assert files_under(data_dir) == []


def test_a_symbolic_link_out_of_the_export_folder_is_refused(data_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = data_dir / "exports" / "acct_1"
    folder.mkdir(parents=True)
    (folder / "escape").symlink_to(outside)
    destination = LocalDestination(account_id="acct_1")

    with pytest.raises(ConnectorError) as raised:
        destination.upload("escape/report.csv")

    assert raised.value.message == "File path 'escape/report.csv' leads out of the export folder."
    assert list(outside.iterdir()) == []


def test_a_prefix_cannot_leave_the_export_folder(data_dir):
    with pytest.raises(ConnectorError):
        LocalDestination(account_id="acct_1", prefix="../acct_2")


def test_wrappers_may_close_the_sink_without_delivering_it(data_dir):
    # gzip and text wrappers close the stream they write to; only the end of the block delivers.
    destination = LocalDestination(account_id="acct_1")
    folder = data_dir / "exports" / "acct_1"
    text = "stock,model\n" + "1,Civic\n" * 10_000

    with destination.upload("vehicles.csv.gz") as sink:
        with (
            gzip.GzipFile(fileobj=sink, mode="wb") as compressed,
            io.TextIOWrapper(compressed, encoding="utf-8", newline="") as writer,
        ):
            writer.write(text)
        visible_before_the_end = files_under(folder)

    assert [name for name in visible_before_the_end if not name.startswith(".")] == []
    assert gzip.decompress((folder / "vehicles.csv.gz").read_bytes()).decode() == text
    assert sink.delivered.bytes == (folder / "vehicles.csv.gz").stat().st_size


def test_a_failure_after_a_wrapper_closed_still_discards(data_dir):
    destination = LocalDestination(account_id="acct_1")

    with pytest.raises(ZeroDivisionError), destination.upload("report.csv") as sink:  # noqa: PT012
        with io.TextIOWrapper(io.BufferedWriter(sink), encoding="utf-8") as writer:
            writer.write("half a report")
        _ = 1 / 0

    assert files_under(data_dir) == []


def test_a_delivered_sink_takes_no_more_data(data_dir):
    destination = LocalDestination(account_id="acct_1")
    with destination.upload("report.csv") as sink:
        sink.write(b"done")

    with pytest.raises(ValueError, match="committed"):
        sink.write(b"more")


def test_the_storage_connectors_are_the_catalogs_file_sources_and_destinations():
    feeding = [connector.id for connector in all_connectors() if connector.feeds_files]
    writing = [connector.id for connector in all_connectors() if connector.writes_files]

    assert sorted(feeding) == ["azure_blob", "s3", "sftp", "sftp_pull"]
    assert sorted(writing) == ["azure_blob", "s3", "sftp"]
    # Typed as the file pipeline and exports use them (mypy checks the protocols here).
    sources: list[type[FileSource]] = [S3Connector, AzureBlobConnector, SftpConnector]
    sources.append(SftpPullConnector)
    destinations: list[type[FileDestination]] = [S3Connector, AzureBlobConnector, SftpConnector]
    assert len(sources) == 4
    assert len(destinations) == 3


def test_a_connector_that_moves_no_files_is_refused_as_a_source_or_destination():
    with pytest.raises(ConnectorError) as source:
        file_source_for("postgres", config={}, credentials={})
    with pytest.raises(ConnectorError) as destination:
        file_destination_for("sftp_pull", config={}, credentials={})

    assert source.value.message == "A postgres connection is not a source of files."
    assert destination.value.message == "A sftp_pull connection cannot receive files."


def test_a_storage_connection_is_made_from_its_connector_id():
    source = file_source_for("s3", config={"bucket": "feeds"}, credentials={})
    destination = file_destination_for(
        "sftp", config={"host": "sftp.example.com", "directory": "out"}, credentials={}
    )

    assert source.location == "s3://feeds/"
    assert destination.location == "sftp://sftp.example.com:22/~/out"
