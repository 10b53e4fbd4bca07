"""An S3 bucket (Amazon S3 or any S3-compatible store) as a file store: a source of feed files by
glob and a destination of atomic uploads (multipart, visible only once completed).

**Egress.** boto3 never opens a connection of its own here. A ``before-send`` handler, registered
on the session before any client exists (so it covers every client and operation, the default
AWS endpoints included), sends each signed request itself through ``config.egress``'s
``EgressTransport``: the host is resolved once, every address is checked against the egress
policy, and the connection goes to a checked address (the Host header and TLS keep the name).
botocore then parses the answer as if its own HTTP client had received it, so its retries,
error parsing and streaming bodies work unchanged. Credentials are always the connection's own:
nothing is read from this machine's environment, ``~/.aws`` or an instance metadata service.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from config.egress import egress_error, egress_http_client
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
from connectors.registry import ConnectorError, register

CONNECT_TIMEOUT_SECONDS = 15
IO_TIMEOUT_SECONDS = 60
# Attempts of one request (botocore's standard retries: 5xx, throttling, dropped connections),
# before the error reaches the run, which has retries of its own.
MAX_ATTEMPTS = 4
# Multipart: every part but the last must be at least 5 MiB, and an upload has at most 10,000
# parts. 8 MiB parts bound an upload's memory to about one part and a file to about 78 GiB.
PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10_000
DOWNLOAD_CHUNK = 1024 * 1024

# Error codes that say "later": throttling and the service's own trouble.
_RETRYABLE_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "TooManyRequestsException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "PriorRequestNotComplete",
}
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}


# --- botocore's HTTP through the egress policy ---------------------------------------------------


def _botocore_error(error: httpx.TransportError, url: str) -> Exception:
    """httpx's failure as the botocore exception its own client would raise, so botocore's
    retry rules apply to it."""
    if isinstance(error, httpx.ConnectTimeout):
        return ConnectTimeoutError(endpoint_url=url, error=error)
    if isinstance(error, httpx.ConnectError):
        return EndpointConnectionError(endpoint_url=url, error=error)
    if isinstance(error, httpx.TimeoutException):
        return ReadTimeoutError(endpoint_url=url, error=error)
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return ConnectionClosedError(endpoint_url=url, error=error)
    return HTTPClientError(error=error)


class _ResponseBody:
    """An httpx response as the ``raw`` of a botocore ``AWSResponse``: ``stream()`` for whole
    bodies, ``read(amt)`` for streaming ones (``get_object``). The bytes are the wire's, not
    decoded: an object stored gzip-encoded comes back as stored."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self._response = response
        self._url = url
        self._chunks = response.iter_raw()
        self._pending = bytearray()

    def _next(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            return b""
        except httpx.TransportError as error:
            self._response.close()
            raise _botocore_error(error, self._url) from error

    def stream(self, **_: Any) -> Iterator[bytes]:
        if self._pending:
            pending, self._pending = bytes(self._pending), bytearray()
            yield pending
        while chunk := self._next():
            yield chunk

    def read(self, amt: int | None = None) -> bytes:
        if amt is None:
            return b"".join(self.stream())
        while len(self._pending) < amt:
            chunk = self._next()
            if not chunk:
                break
            self._pending += chunk
        data = bytes(self._pending[:amt])
        del self._pending[:amt]
        return data

    def close(self) -> None:
        self._response.close()


def _request_content(body: Any) -> Any:
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()

    def chunks() -> Iterator[bytes]:
        while chunk := body.read(DOWNLOAD_CHUNK):
            yield chunk.encode() if isinstance(chunk, str) else chunk

    return chunks()


class EgressSender:
    """botocore's ``before-send`` handler: send the signed request through the egress policy
    and answer the response (botocore then never uses its own connection pool)."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        # httpx does not do "Expect: 100-continue"; the body is sent right away.
        headers = [
            (name, value) for name, value in request.headers.items() if name.lower() != "expect"
        ]
        outgoing = httpx.Request(
            request.method, request.url, headers=headers, content=_request_content(request.body)
        )
        try:
            response = self._http.send(outgoing, stream=True)
        except httpx.TransportError as error:
            raise _botocore_error(error, request.url) from error
        return AWSResponse(
            request.url,
            response.status_code,
            dict(response.headers.items()),
            _ResponseBody(response, request.url),
        )


# --- the connector -------------------------------------------------------------------------------


@register
class S3Connector(FileStore):
    id = "s3"
    name = "Amazon S3"
    description = (
        "Files in an S3 bucket, on AWS or any S3-compatible store (endpointUrl): a source of "
        "feed files matching a glob, optionally moved to an archive prefix once taken, and a "
        "destination of exports, uploaded in parts and visible only once complete."
    )
    config_properties = {
        "bucket": {
            "type": "string",
            "minLength": 3,
            "maxLength": 255,
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        },
        "prefix": {
            "type": "string",
            "default": "",
            "description": "The folder inside the bucket (a key prefix such as feeds/in): "
            "files are listed there and exports written under it.",
        },
        "region": {
            "type": "string",
            "pattern": r"^[a-z0-9-]+$",
            "default": "us-east-1",
            "description": "The bucket's region (us-east-1, eu-west-1, ...).",
        },
        "endpointUrl": {
            "type": "string",
            "pattern": r"^https?://[^\s/?#]+/?$",
            "description": "The endpoint of an S3-compatible store (https://minio.example.com:"
            "9000); without it, AWS's endpoint for the region.",
        },
        "pathStyle": {
            "type": "boolean",
            "description": "Name the bucket in the path (https://host/bucket/key) rather than "
            "in the host name. Defaults to true with endpointUrl, false on AWS.",
        },
        **SOURCE_CONFIG_PROPERTIES,
        "archivePrefix": {
            "type": "string",
            "minLength": 1,
            "description": "Folder taken files are moved to; relative to prefix, or to the "
            "bucket's root when it starts with /.",
        },
    }
    config_required = ["bucket"]
    credentials_schema = {
        "type": "object",
        "properties": {
            "accessKeyId": {"type": "string", "minLength": 1},
            "secretAccessKey": {"type": "string", "minLength": 1},
            "sessionToken": {
                "type": "string",
                "minLength": 1,
                "description": "Only for temporary credentials.",
            },
        },
        "required": ["accessKeyId", "secretAccessKey"],
        "additionalProperties": False,
    }

    def __init__(self, *, config: dict[str, Any], credentials: dict[str, Any]) -> None:
        super().__init__(config=config, credentials=credentials)
        self._s3: Any = None
        self._http: httpx.Client | None = None

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

    # --- config ------------------------------------------------------------------------------

    @property
    def bucket(self) -> str:
        return str(self.config.get("bucket") or "")

    @property
    def prefix(self) -> str:
        return prefix_clean(self.config.get("prefix"))

    @property
    def region(self) -> str:
        return str(self.config.get("region") or "us-east-1")

    @property
    def endpoint_url(self) -> str | None:
        return (
            str(self.config["endpointUrl"]).rstrip("/") if self.config.get("endpointUrl") else None
        )

    @property
    def archive_folder(self) -> str | None:
        archive = str(self.config.get("archivePrefix") or "")
        if not archive:
            return None
        if archive.startswith("/"):
            return prefix_clean(archive)
        return prefix_clean(prefix_join(self.prefix, archive))

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def origin(self) -> str:
        if self.endpoint_url:
            return urlsplit(self.endpoint_url).hostname or self.endpoint_url
        return f"s3.{self.region}.amazonaws.com"

    # --- the client --------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._s3 is not None:
            return self._s3
        if not self.bucket:
            raise ConnectorError("config.bucket is required.", retryable=False)
        if not self.credentials.get("accessKeyId") or not self.credentials.get("secretAccessKey"):
            raise ConnectorError(
                "Set credentials.accessKeyId and credentials.secretAccessKey.", retryable=False
            )
        path_style = self.config.get("pathStyle")
        if path_style is None:
            addressing = "path" if self.endpoint_url else "auto"
        else:
            addressing = "path" if path_style else "virtual"
        http = egress_http_client(
            timeout=httpx.Timeout(IO_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            trust_env=False,
        )
        session = boto3.session.Session(
            aws_access_key_id=self.credentials["accessKeyId"],
            aws_secret_access_key=self.credentials["secretAccessKey"],
            aws_session_token=self.credentials.get("sessionToken") or None,
            region_name=self.region,
        )
        # On the session, before the client exists: every client botocore makes from it (an
        # S3 Express session, say) sends through the policy too.
        session.events.register("before-send", EgressSender(http))
        try:
            self._s3 = session.client(
                "s3",
                endpoint_url=self.endpoint_url,
                config=Config(
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    read_timeout=IO_TIMEOUT_SECONDS,
                    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                    s3={"addressing_style": addressing},
                    signature_version="s3v4",
                    # The endpoint is the connection's, never one from this machine's env.
                    ignore_configured_endpoint_urls=True,
                    # Checksums only where S3 requires them: many S3-compatible stores reject
                    # the newer default trailers.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        except (BotoCoreError, ValueError) as error:
            http.close()
            raise ConnectorError(f"The S3 settings are invalid: {error}", retryable=False) from None
        self._http = http
        return self._s3

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self._http = None
        self._s3 = None

    def _error(self, error: Exception, what: str, *, key: str | None = None) -> ConnectorError:
        """A boto3 failure as a ``ConnectorError`` that says whether a retry can help. With
        ``key``, a missing object or one without access is that file's error alone."""
        refused = egress_error(error)
        if refused is not None:
            return ConnectorError(refused.message, retryable=False)
        if isinstance(error, ClientError):
            details = error.response.get("Error", {})
            code = str(details.get("Code") or "")
            message = str(details.get("Message") or "") or code
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            where = f"{what}: S3 answered {status} {code}".rstrip()
            if code == "NoSuchBucket":
                return ConnectorError(
                    f"{what}: bucket {self.bucket} does not exist.", retryable=False
                )
            if code in _CREDENTIAL_CODES:
                return ConnectorError(
                    f"{what}: S3 refused the credentials ({code}): {message}", retryable=False
                )
            if code in _RETRYABLE_CODES or status >= 500 or status == 429:
                return ConnectorError(f"{where} ({message}); try again later.", retryable=True)
            if key is not None and (code in _MISSING_KEY_CODES or code == "AccessDenied"):
                return RemoteFileError(f"{where}: {message}.")
            return ConnectorError(f"{where}: {message}.", retryable=False)
        if isinstance(error, BotoConnectionError | HTTPClientError | IncompleteReadError):
            # Unreachable, timed out, dropped, or a body cut short: the next attempt may do.
            return ConnectorError(f"{what}: {error}", retryable=True)
        return ConnectorError(f"{what}: {error}", retryable=False)

    def _call(self, what: str, operation: str, *, key: str | None = None, **params: Any) -> Any:
        client = self._client()
        try:
            return getattr(client, operation)(Bucket=self.bucket, **params)
        except (BotoCoreError, ClientError) as error:
            raise self._error(error, what, key=key) from error
        except Exception as error:
            if egress_error(error) is None:
                raise
            raise self._error(error, what) from error

    # --- source --------------------------------------------------------------------------------

    def _listing_prefix(self, prefix: str) -> str:
        return f"{prefix}/" if prefix else ""

    def list_files(self) -> list[RemoteFile]:
        """Objects directly under the prefix (not in deeper folders) whose name matches the
        pattern, oldest first."""
        listing = self._listing_prefix(self.prefix)
        files: list[RemoteFile] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Prefix": listing, "Delimiter": "/"}
            if token:
                params["ContinuationToken"] = token
            page = self._call(f"Listing {self.location}", "list_objects_v2", **params)
            for item in page.get("Contents", []):
                key = str(item["Key"])
                name = key[len(listing) :]
                if not name or "/" in name or not name_matches(name, self.pattern):
                    continue
                modified: datetime = item["LastModified"]
                files.append(
                    RemoteFile(
                        path=key, name=name, size=int(item["Size"]), mtime=int(modified.timestamp())
                    )
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
        files.sort(key=lambda remote: (remote.mtime, remote.name))
        return files

    def download(self, remote: RemoteFile, local_path: Path) -> str:
        """Stream the object into ``local_path`` (created or replaced); returns its sha256."""
        what = f"Downloading s3://{self.bucket}/{remote.path}"
        digest = hashlib.sha256()
        answer = self._call(what, "get_object", key=remote.path, Key=remote.path)
        body = answer["Body"]
        # Errors of the local file (a full disk) propagate as they are: they are not S3's.
        try:
            with open(local_path, "wb") as target:
                while True:
                    try:
                        chunk = body.read(DOWNLOAD_CHUNK)
                    except (BotoCoreError, ClientError) as error:
                        raise self._error(error, what) from error
                    if not chunk:
                        break
                    digest.update(chunk)
                    target.write(chunk)
        finally:
            body.close()
        return digest.hexdigest()

    def _exists(self, key: str) -> bool:
        try:
            self._call(f"Checking s3://{self.bucket}/{key}", "head_object", key=key, Key=key)
        except RemoteFileError:
            return False
        return True

    def archive(self, remote: RemoteFile) -> str:
        """Copy the object under the archive prefix, then delete it (S3 has no rename); a name
        already there gets a numbered suffix. Returns the new key."""
        archive = self.archive_folder
        if archive is None:
            raise ConnectorError("config.archivePrefix is not set.", retryable=False)
        what = f"Archiving s3://{self.bucket}/{remote.path}"
        target = prefix_join(archive, remote.name)
        number = 0
        while self._exists(target):
            number += 1
            target = prefix_join(archive, numbered_name(remote.name, number))
        source = {"Bucket": self.bucket, "Key": remote.path}
        self._call(what, "copy_object", key=remote.path, Key=target, CopySource=source)
        self._call(what, "delete_object", key=remote.path, Key=remote.path)
        return target

    # --- destination ---------------------------------------------------------------------------

    def _key(self, path: str) -> tuple[str, str]:
        relative = relative_path_clean(path)
        return relative, prefix_join(self.prefix, relative)

    def upload(self, path: str) -> FileSink:
        relative, key = self._key(path)
        return _S3Sink(store=self, key=key, relative=relative)

    def remove(self, path: str) -> None:
        _relative, key = self._key(path)
        self._call(f"Deleting s3://{self.bucket}/{key}", "delete_object", Key=key)

    def _check_listing(self) -> None:
        self._call(
            f"Listing {self.location}",
            "list_objects_v2",
            Prefix=self._listing_prefix(self.prefix),
            Delimiter="/",
            MaxKeys=1,
        )


class _S3Sink(FileSink):
    """One object: a single PUT when it fits in one part, otherwise a multipart upload whose
    parts go out as they fill. Completing the upload makes the object appear whole; a failure
    aborts it, so S3 keeps no parts (and bills none)."""

    def __init__(self, *, store: S3Connector, key: str, relative: str) -> None:
        super().__init__(uri=f"s3://{store.bucket}/{key}", path=relative)
        self._store = store
        self._key = key
        self._what = f"Uploading s3://{store.bucket}/{key}"
        self._content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        self._buffer = PartBuffer(PART_SIZE)
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _write(self, data: memoryview) -> None:
        for part in self._buffer.add(data):
            self._upload_part(part)

    def _upload_part(self, part: bytes) -> None:
        if self._upload_id is None:
            started = self._store._call(
                self._what,
                "create_multipart_upload",
                Key=self._key,
                ContentType=self._content_type,
            )
            self._upload_id = str(started["UploadId"])
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise ConnectorError(
                f"{self._what}: the file is larger than S3 takes in {MAX_PARTS} parts of "
                f"{PART_SIZE // (1024 * 1024)} MiB; split it into smaller files.",
                retryable=False,
            )
        answer = self._store._call(
            self._what,
            "upload_part",
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=part,
        )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})

    def _commit(self) -> None:
        rest = self._buffer.rest()
        if self._upload_id is None:
            self._store._call(
                self._what, "put_object", Key=self._key, Body=rest, ContentType=self._content_type
            )
            return
        if rest:
            self._upload_part(rest)
        self._store._call(
            self._what,
            "complete_multipart_upload",
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def _discard(self) -> None:
        self._buffer.rest()
        if self._upload_id is not None:
            with contextlib.suppress(ConnectorError):
                self._store._call(
                    self._what, "abort_multipart_upload", Key=self._key, UploadId=self._upload_id
                )
