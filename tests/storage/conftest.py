"""Railyard's own file stores in a bucket: moto's S3 in server mode (real HTTP, SigV4, IAM
authentication on) on a loopback port, selected the way an installation selects it
(``FEED_STORAGE_URL`` / ``EXPORT_STORAGE_URL`` with the ``AWS_S3_*`` settings)."""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from config import settings as config_settings
from tests.servers import S3Server, moto_s3  # noqa: F401 - a fixture


@dataclass
class Bucket:
    server: S3Server
    name: str
    prefix: str

    def objects(self) -> list[str]:
        listing = self.server.client().list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.server.client().get_object(Bucket=self.name, Key=key)["Body"].read()

    def put(self, key: str, content: bytes) -> None:
        self.server.client().put_object(Bucket=self.name, Key=key, Body=content)


def _bucket(server: S3Server, prefix: str) -> Bucket:
    name = f"railyard-store-{secrets.token_hex(4)}"
    server.client().create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": server.region}
    )
    return Bucket(server=server, name=name, prefix=prefix)


def _use(settings, monkeypatch, bucket: Bucket, *, alias: str, variable: str, folder: str):
    """Point the ``alias`` storage at ``bucket`` as the environment would: the URL variable
    read by the settings' own selection, and the AWS_S3_* settings."""
    settings.AWS_S3_ACCESS_KEY_ID = bucket.server.admin["accessKeyId"]
    settings.AWS_S3_SECRET_ACCESS_KEY = bucket.server.admin["secretAccessKey"]
    settings.AWS_S3_REGION_NAME = bucket.server.region
    settings.AWS_S3_ENDPOINT_URL = bucket.server.endpoint
    settings.AWS_S3_ADDRESSING_STYLE = "path"
    monkeypatch.setenv(variable, f"s3://{bucket.name}/{bucket.prefix}")
    entry = config_settings._file_storage(variable, folder_setting=folder)
    assert entry["BACKEND"] == "storages.backends.s3.S3Storage"
    settings.STORAGES = {**settings.STORAGES, alias: entry}


@pytest.fixture
def feeds_bucket(settings, monkeypatch, moto_s3, tmp_path) -> Bucket:  # noqa: F811
    """Received feed files go to a bucket; FEED_STORAGE_DIR is a folder that must stay empty."""
    settings.FEED_STORAGE_DIR = tmp_path / "feeds-folder-unused"
    bucket = _bucket(moto_s3, "received")
    _use(
        settings,
        monkeypatch,
        bucket,
        alias="feeds",
        variable="FEED_STORAGE_URL",
        folder="FEED_STORAGE_DIR",
    )
    return bucket


@pytest.fixture
def exports_bucket(settings, monkeypatch, moto_s3, tmp_path) -> Bucket:  # noqa: F811
    """LOCAL export destinations write to a bucket; EXPORT_LOCAL_DIR must stay empty."""
    settings.EXPORT_LOCAL_DIR = tmp_path / "exports-folder-unused"
    bucket = _bucket(moto_s3, "exported/files")
    _use(
        settings,
        monkeypatch,
        bucket,
        alias="exports",
        variable="EXPORT_STORAGE_URL",
        folder="EXPORT_LOCAL_DIR",
    )
    return bucket


@pytest.fixture
def scratch(monkeypatch, tmp_path) -> Path:
    """The temporary folder (TMPDIR) of this process, to see what is left in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def files_under(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
