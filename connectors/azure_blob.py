"""An Azure Blob Storage container as a file store: a source of feed files by glob and a
destination of atomic uploads (staged blocks, committed at the end).

**Egress.** The SDK's HTTP goes through azure-core's ``RequestsTransport`` on a requests session
of our own whose only adapter is ``EgressHTTPAdapter``: before each request (retries and
redirects included, as azure-core sends each one through the transport) the URL's host is
resolved once and every address checked against the egress policy; urllib3 then connects to the
checked address, while the Host header, SNI and the certificate check keep the name. The session
ignores proxy and other environment settings, and the credentials are always the connection's
own (a connection string, an account key or a SAS token; nothing from this machine).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import mimetypes
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import (
    BlobPrefix,
    BlobServiceClient,
    ContainerClient,
    ContentSettings,
    ExponentialRetry,
)
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from connectors.files import (
    SOURCE_CONFIG_PROPERTIES,
    FileSink,
    FileStore,
    PartBuffer,
    RemoteFile,
    RemoteFileError,
    name_matches,
    numbered_name,
    prefix_clean,
    prefix_errors,
    prefix_join,
    relative_path_clean,
)
from connectors.network import checked_addresses
from connectors.registry import ConnectorError, register

CONNECT_TIMEOUT_SECONDS = 15
IO_TIMEOUT_SECONDS = 60
# Retries of one request by the SDK (5xx, throttling, dropped connections), before the error
# reaches the run, which has retries of its own.
MAX_RETRIES = 3
# Blocks of 8 MiB: an upload holds about one in memory; a blob takes at most 50,000 blocks.
BLOCK_SIZE = 8 * 1024 * 1024
MAX_BLOCKS = 50_000
DOWNLOAD_CHUNK = 4 * 1024 * 1024
# A same-account copy (archiving) is usually done at once; a slow one is waited for this long.
COPY_WAIT_SECONDS = 300

_RETRYABLE_CODES = {"ServerBusy", "OperationTimedOut", "InternalError", "IncrementalCopyBusy"}
_CREDENTIAL_CODES = {
    "AuthenticationFailed",
    "AuthorizationFailure",
    "InvalidAuthenticationInfo",
    "NoAuthenticationInformation",
}
_PERMISSION_CODES = {
    "AuthorizationPermissionMismatch",
    "AuthorizationResourceTypeMismatch",
    "AuthorizationServiceMismatch",
    "AuthorizationSourceIPMismatch",
    "AuthorizationProtocolMismatch",
    "InsufficientAccountPermissions",
}


# --- requests through the egress policy ----------------------------------------------------------


def _connect_failed(error: requests.ConnectionError) -> bool:
    """Whether requests failed before anything was sent (so another address may be tried)."""
    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


class EgressHTTPAdapter(HTTPAdapter):
    """A requests adapter that connects only to addresses the egress policy allows.

    ``send`` resolves the URL's host once and checks every address (a refusal is a
    ``ConnectorError``); urllib3's pool is then keyed by the checked address, so the connection
    goes there and nowhere else, with the name kept for the Host header, SNI and the
    certificate. Proxies are never used: one would connect on our behalf to anywhere.
    """

    def __init__(self) -> None:
        super().__init__(max_retries=Retry(total=False, redirect=False, raise_on_status=False))
        self._pinned = threading.local()

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        parts = urlsplit(str(request.url))
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = checked_addresses(host, port)
        if "Host" not in request.headers:
            request.headers["Host"] = parts.netloc.rpartition("@")[2]
        last_error: requests.ConnectionError | None = None
        for address in addresses:
            self._pinned.address = str(address)
            try:
                return super().send(
                    request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=None
                )
            except requests.ConnectionError as error:
                if not _connect_failed(error):
                    raise
                last_error = error
            finally:
                self._pinned.address = None
        assert last_error is not None
        raise last_error

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        address = getattr(self._pinned, "address", None)
        if address is None:
            # Only send() picks connections: anything else would connect unchecked.
            raise requests.ConnectionError("No address checked by the egress policy.")
        name = host_params["host"]
        host_params = {**host_params, "host": address}
        if host_params.get("scheme") == "https":
            pool_kwargs = {**pool_kwargs, "server_hostname": name, "assert_hostname": name}
        return host_params, pool_kwargs


def egress_requests_session() -> requests.Session:
    session = requests.Session()
    # No proxies, .netrc or CA bundles from this machine's environment.
    session.trust_env = False
    adapter = EgressHTTPAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --- the connector -------------------------------------------------------------------------------


@register
class AzureBlobConnector(FileStore):
    id = "azure_blob"
    name = "Azure Blob Storage"
    description = (
        "Files in an Azure Blob Storage container: a source of feed files matching a glob, "
        "optionally moved to an archive prefix once taken, and a destination of exports, staged "
        "in blocks and visible only once committed."
    )
    config_properties = {
        "container": {
            "type": "string",
            "pattern": r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$",
            "description": "The container's name.",
        },
        "accountName": {
            "type": "string",
            "pattern": r"^[a-z0-9]{3,24}$",
            "description": "The storage account; needed with an accountKey or a sasToken unless "
            "endpointUrl names it.",
        },
        "endpointUrl": {
            "type": "string",
            "pattern": r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
            "description": "The account's blob endpoint (https://<account>.blob.core.windows.net "
            "by default; another cloud or an emulator otherwise).",
        },
        "prefix": {
            "type": "string",
            "default": "",
            "description": "The folder inside the container (a name prefix such as feeds/in): "
            "files are listed there and exports written under it.",
        },
        **SOURCE_CONFIG_PROPERTIES,
        "archivePrefix": {
            "type": "string",
            "minLength": 1,
            "description": "Folder taken files are moved to; relative to prefix, or to the "
            "container's root when it starts with /.",
        },
    }
    config_required = ["container"]
    credentials_schema = {
        "type": "object",
        "description": "Exactly one of: a connection string, an account key, a SAS token.",
        "properties": {
            "connectionString": {"type": "string", "minLength": 1},
            "accountKey": {"type": "string", "minLength": 1},
            "sasToken": {"type": "string", "minLength": 1},
        },
        "oneOf": [
            {"required": ["connectionString"]},
            {"required": ["accountKey"]},
            {"required": ["sasToken"]},
        ],
        "additionalProperties": False,
    }

    def __init__(self, *, config: dict[str, Any], credentials: dict[str, Any]) -> None:
        super().__init__(config=config, credentials=credentials)
        self._container: ContainerClient | None = None
        self._service: BlobServiceClient | None = None
        self._session: requests.Session | None = None

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, list[str]]:
        errors = super().validate_config(config)
        if isinstance(config, dict):
            for key in ("prefix", "archivePrefix"):
                if key not in errors and (messages := prefix_errors(config.get(key))):
                    errors[key] = messages
            pattern = config.get("pattern")
            if "pattern" not in errors and isinstance(pattern, str) and "/" in pattern:
                errors["pattern"] = ["pattern matches file names: it may not contain /."]
        return errors

    @classmethod
    def validate_credentials(cls, credentials: dict[str, Any]) -> dict[str, list[str]]:
        errors = super().validate_credentials(credentials)
        if isinstance(credentials, dict) and "_" in errors:
            given = [
                key for key in ("connectionString", "accountKey", "sasToken") if key in credentials
            ]
            if len(given) != 1:
                # jsonschema's oneOf message would quote the whole object, secrets included.
                errors["_"] = [
                    "Give exactly one of connectionString, accountKey or sasToken"
                    + (f" (got {', '.join(given)})." if given else ".")
                ]
        return errors

    # --- config ------------------------------------------------------------------------------

    @property
    def container(self) -> str:
        return str(self.config.get("container") or "")

    @property
    def prefix(self) -> str:
        return prefix_clean(self.config.get("prefix"))

    @property
    def archive_folder(self) -> str | None:
        archive = str(self.config.get("archivePrefix") or "")
        if not archive:
            return None
        if archive.startswith("/"):
            return prefix_clean(archive)
        return prefix_clean(prefix_join(self.prefix, archive))

    def _account_url(self) -> str:
        endpoint = str(self.config.get("endpointUrl") or "").rstrip("/")
        if endpoint:
            return endpoint
        account = self.config.get("accountName")
        if not account:
            raise ConnectorError(
                "Set config.accountName (or config.endpointUrl) to use an account key or a SAS "
                "token.",
                retryable=False,
            )
        return f"https://{account}.blob.core.windows.net"

    def _account_name(self) -> str:
        if self.config.get("accountName"):
            return str(self.config["accountName"])
        parts = urlsplit(self._account_url())
        host = parts.hostname or ""
        # https://<account>.blob.core.windows.net, or an emulator's http://host:port/<account>
        if ".blob." in host:
            return host.split(".", 1)[0]
        return parts.path.strip("/").split("/", 1)[0]

    @property
    def location(self) -> str:
        account = ""
        if self._service is not None:
            account = str(self._service.account_name or "")
        elif not self.credentials.get("connectionString"):
            with contextlib.suppress(ConnectorError):
                account = self._account_name()
        return f"azure://{account or 'account'}/{self.container}/{self.prefix}"

    @property
    def origin(self) -> str:
        if self._service is None:
            with contextlib.suppress(ConnectorError):
                self._client()
        if self._service is not None:
            return urlsplit(self._service.url).hostname or ""
        return ""

    # --- the client --------------------------------------------------------------------------

    def _client(self) -> ContainerClient:
        if self._container is not None:
            return self._container
        if not self.container:
            raise ConnectorError("config.container is required.", retryable=False)
        session = egress_requests_session()
        options: dict[str, Any] = {
            # Timeouts belong to the transport: the client's own options only reach a transport
            # the SDK makes itself.
            "transport": RequestsTransport(
                session=session,
                session_owner=False,
                use_env_settings=False,
                connection_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=IO_TIMEOUT_SECONDS,
            ),
            "retry_policy": ExponentialRetry(
                initial_backoff=2, increment_base=2, retry_total=MAX_RETRIES, random_jitter_range=1
            ),
            # Downloads come in chunks of this size, never a first request of 32 MiB.
            "max_single_get_size": DOWNLOAD_CHUNK,
            "max_chunk_get_size": DOWNLOAD_CHUNK,
        }
        connection_string = self.credentials.get("connectionString")
        account_key = self.credentials.get("accountKey")
        sas_token = self.credentials.get("sasToken")
        try:
            if connection_string:
                service = BlobServiceClient.from_connection_string(connection_string, **options)
            elif account_key:
                service = BlobServiceClient(
                    self._account_url(),
                    credential={"account_name": self._account_name(), "account_key": account_key},
                    **options,
                )
            elif sas_token:
                service = BlobServiceClient(
                    self._account_url(), credential=str(sas_token).lstrip("?"), **options
                )
            else:
                raise ConnectorError(
                    "Set credentials.connectionString, credentials.accountKey or "
                    "credentials.sasToken.",
                    retryable=False,
                )
        except ConnectorError:
            session.close()
            raise
        except (ValueError, AzureError) as error:
            session.close()
            # The message may quote the connection string: say what is wrong, not what it said.
            kind = "connection string" if connection_string else "account settings"
            raise ConnectorError(
                f"The Azure {kind} cannot be used: {type(error).__name__}.", retryable=False
            ) from None
        self._session = session
        self._service = service
        self._container = service.get_container_client(self.container)
        return self._container

    def close(self) -> None:
        if self._service is not None:
            with contextlib.suppress(Exception):
                self._service.close()
        if self._session is not None:
            self._session.close()
        self._service = None
        self._container = None
        self._session = None

    def _blob_uri(self, name: str) -> str:
        # The SDK's own URLs carry a SAS token when that is the credential: never show one.
        self._client()
        assert self._service is not None
        scheme, netloc, path, _query, _fragment = urlsplit(self._service.url)
        base = urlunsplit((scheme, netloc, path.rstrip("/"), "", ""))
        return f"{base}/{self.container}/{quote(name)}"

    def _error(self, error: Exception, what: str, *, key: str | None = None) -> ConnectorError:
        """An SDK failure as a ``ConnectorError`` that says whether a retry can help. With
        ``key``, a missing blob or one without access is that file's error alone."""
        if isinstance(error, ConnectorError):
            return error
        if isinstance(error, HttpResponseError):
            # The SDK answers its own enum for known codes ("StorageErrorCode.X" as a str).
            code = getattr(error, "error_code", None)
            code = str(getattr(code, "value", code) or "")
            status = int(error.status_code or 0)
            summary = str(error.reason or "").strip() or code
            where = f"{what}: Azure answered {status} {code}".rstrip()
            if code == "ContainerNotFound":
                return ConnectorError(
                    f"{what}: container {self.container} does not exist.", retryable=False
                )
            if code in _CREDENTIAL_CODES or (status == 403 and not code):
                return ConnectorError(
                    f"{what}: Azure refused the credentials ({code or status}).", retryable=False
                )
            if code in _RETRYABLE_CODES or status >= 500 or status == 429:
                return ConnectorError(f"{where}; try again later.", retryable=True)
            if key is not None and (status == 404 or code in _PERMISSION_CODES):
                return RemoteFileError(f"{where} ({summary}).")
            return ConnectorError(f"{where} ({summary}).", retryable=False)
        if isinstance(error, ServiceRequestError | ServiceResponseError):
            return ConnectorError(f"{what}: {_first_line(error)}", retryable=True)
        return ConnectorError(f"{what}: {_first_line(error)}", retryable=False)

    def _call(
        self, what: str, operation: Any, *args: Any, key: str | None = None, **params: Any
    ) -> Any:
        try:
            return operation(*args, **params)
        except (AzureError, ConnectorError) as error:
            raise self._error(error, what, key=key) from error

    # --- source --------------------------------------------------------------------------------

    def _listing_prefix(self, prefix: str) -> str:
        return f"{prefix}/" if prefix else ""

    def list_files(self) -> list[RemoteFile]:
        """Blobs directly under the prefix (not in deeper folders) whose name matches the
        pattern, oldest first."""
        container = self._client()
        listing = self._listing_prefix(self.prefix)
        files: list[RemoteFile] = []
        what = f"Listing {self.location}"

        def collect() -> None:
            for item in container.walk_blobs(name_starts_with=listing or None, delimiter="/"):
                if isinstance(item, BlobPrefix):
                    continue
                name = str(item.name)[len(listing) :]
                if not name or "/" in name or not name_matches(name, self.pattern):
                    continue
                files.append(
                    RemoteFile(
                        path=str(item.name),
                        name=name,
                        size=int(item.size or 0),
                        mtime=int(item.last_modified.timestamp()),
                    )
                )

        self._call(what, collect)
        files.sort(key=lambda remote: (remote.mtime, remote.name))
        return files

    def download(self, remote: RemoteFile, local_path: Path) -> str:
        """Stream the blob into ``local_path`` (created or replaced); returns its sha256."""
        what = f"Downloading {remote.path}"
        blob = self._client().get_blob_client(remote.path)
        digest = hashlib.sha256()
        downloader = self._call(what, blob.download_blob, key=remote.path, max_concurrency=1)
        # Errors of the local file (a full disk) propagate as they are: they are not Azure's.
        with open(local_path, "wb") as target:
            chunks = iter(downloader.chunks())
            while True:
                chunk = self._call(what, next, chunks, None)
                if chunk is None:
                    break
                digest.update(chunk)
                target.write(chunk)
        return digest.hexdigest()

    def archive(self, remote: RemoteFile) -> str:
        """Copy the blob under the archive prefix, then delete it (a blob has no rename); a
        name already there gets a numbered suffix. Returns the new name."""
        archive = self.archive_folder
        if archive is None:
            raise ConnectorError("config.archivePrefix is not set.", retryable=False)
        container = self._client()
        what = f"Archiving {remote.path}"
        target = prefix_join(archive, remote.name)
        number = 0
        while self._call(what, container.get_blob_client(target).exists):
            number += 1
            target = prefix_join(archive, numbered_name(remote.name, number))
        source = container.get_blob_client(remote.path)
        copy = container.get_blob_client(target)
        self._call(what, copy.start_copy_from_url, source.url, key=remote.path)
        deadline = time.monotonic() + COPY_WAIT_SECONDS
        while True:
            status = self._call(what, copy.get_blob_properties).copy.status
            if status == "success":
                break
            if status != "pending" or time.monotonic() > deadline:
                with contextlib.suppress(AzureError):
                    copy.delete_blob()
                raise RemoteFileError(f"{what}: the copy to {target} ended {status}.")
            time.sleep(1)
        self._call(what, source.delete_blob, key=remote.path)
        return target

    # --- destination ---------------------------------------------------------------------------

    def _name(self, path: str) -> tuple[str, str]:
        relative = relative_path_clean(path)
        return relative, prefix_join(self.prefix, relative)

    def upload(self, path: str) -> FileSink:
        relative, name = self._name(path)
        return _AzureSink(store=self, name=name, relative=relative)

    def remove(self, path: str) -> None:
        _relative, name = self._name(path)
        blob = self._client().get_blob_client(name)
        try:
            blob.delete_blob()
        except ResourceNotFoundError:
            return
        except (AzureError, ConnectorError) as error:
            raise self._error(error, f"Deleting {name}") from error

    def _check_listing(self) -> None:
        container = self._client()
        listing = self._listing_prefix(self.prefix)

        def first_page() -> None:
            pages = container.list_blobs(name_starts_with=listing or None, results_per_page=1)
            for _page in pages.by_page():
                break

        self._call(f"Listing {self.location}", first_page)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class _AzureSink(FileSink):
    """One block blob: a single Put Blob when it fits in one block, otherwise blocks staged as
    they fill and committed at the end. Staged blocks are invisible until the commit; after a
    failure they are never committed, and Azure discards them (within a week)."""

    def __init__(self, *, store: AzureBlobConnector, name: str, relative: str) -> None:
        super().__init__(uri=store._blob_uri(name), path=relative)
        self._store = store
        self._blob = store._client().get_blob_client(name)
        self._what = f"Uploading {name}"
        self._content = ContentSettings(
            content_type=mimetypes.guess_type(name)[0] or "application/octet-stream"
        )
        self._buffer = PartBuffer(BLOCK_SIZE)
        # Block ids unique to this upload: another writer's uncommitted blocks of the same
        # blob are never part of our commit.
        self._upload = secrets.token_hex(8)
        self._blocks: list[str] = []

    def _write(self, data: memoryview) -> None:
        for block in self._buffer.add(data):
            self._stage(block)

    def _stage(self, block: bytes) -> None:
        if len(self._blocks) >= MAX_BLOCKS:
            raise ConnectorError(
                f"{self._what}: the file is larger than a blob takes in {MAX_BLOCKS} blocks of "
                f"{BLOCK_SIZE // (1024 * 1024)} MiB; split it into smaller files.",
                retryable=False,
            )
        block_id = base64.b64encode(f"{self._upload}-{len(self._blocks):06d}".encode()).decode()
        self._store._call(self._what, self._blob.stage_block, block_id, block, length=len(block))
        self._blocks.append(block_id)

    def _commit(self) -> None:
        rest = self._buffer.rest()
        if not self._blocks:
            self._store._call(
                self._what,
                self._blob.upload_blob,
                rest,
                overwrite=True,
                content_settings=self._content,
            )
            return
        if rest:
            self._stage(rest)
        self._store._call(
            self._what,
            self._blob.commit_block_list,
            self._blocks,
            content_settings=self._content,
        )

    def _discard(self) -> None:
        self._buffer.rest()
        self._blocks = []
