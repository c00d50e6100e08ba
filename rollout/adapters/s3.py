"""S3 through boto3: streamed multipart writes, ranged reads, errors mapped onto ours.

Nothing here holds an object whole: :class:`MultipartWriter` keeps one part in
memory and :class:`RangeReader` fetches the ranges it is asked for, so an
archive of any size passes through a fixed amount of memory.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from rollout.errors import InputRejected, PermanentError, ServiceRejected, ServiceUnavailable

SERVICE = "S3"
PART_SIZE = 8 * 1024 * 1024
"""Bytes per multipart part; S3 needs at least 5 MiB for every part but the last."""
_RETRYABLE_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "Throttling"}


class ObjectMissing(PermanentError):
    """The object (or bucket) asked for does not exist."""


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key, written ``s3://bucket/key``."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        """Read ``s3://bucket/key``; anything else is refused with the expected form."""
        if not uri.startswith("s3://") or "/" not in uri[5:] or uri[5:].startswith("/"):
            raise InputRejected(f"{uri!r} is not an S3 URI: write s3://BUCKET/KEY")
        bucket, key = uri[5:].split("/", 1)
        return cls(bucket, key)

    def child(self, name: str) -> S3Location:
        """The location of ``name`` under this one, taken as a folder."""
        return S3Location(self.bucket, self.key.rstrip("/") + "/" + name)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class Encryption:
    """Server-side encryption for written objects."""

    mode: str | None = None
    kms_key_id: str | None = None

    def args(self) -> dict[str, str]:
        """Keyword arguments for ``put_object`` / ``create_multipart_upload``."""
        if self.mode is None:
            return {}
        args = {"ServerSideEncryption": self.mode}
        if self.mode == "aws:kms" and self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args


@contextmanager
def s3_errors(action: str) -> Iterator[None]:
    """Translate botocore exceptions raised inside the block into ours."""
    try:
        yield
    except ClientError as error:
        info = error.response.get("Error", {})
        code = str(info.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{action}: {code} {info.get('Message', '')}".strip()
        if code in {"NoSuchKey", "NoSuchBucket", "404", "NotFound", "NoSuchUpload"}:
            raise ObjectMissing(message) from error
        if status >= 500 or code in _RETRYABLE_CODES:
            raise ServiceUnavailable(SERVICE, message) from error
        raise ServiceRejected(SERVICE, message) from error
    except BotoCoreError as error:
        # Connection refused or reset, timeouts, a closed stream: the service, not the request.
        raise ServiceUnavailable(SERVICE, f"{action}: {error}") from error


def connect(
    *,
    region: str,
    endpoint_url: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    max_attempts: int = 4,
    timeout: float = 30.0,
) -> Any:
    """A boto3 S3 client; boto3's own standard retry mode covers single requests."""
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=timeout,
        read_timeout=timeout,
        signature_version="s3v4",
        s3={"addressing_style": "path"} if endpoint_url else {},
    )
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )


class MultipartWriter(io.RawIOBase):
    """A write-only stream that becomes one S3 object through a multipart upload.

    ``close()`` completes the upload; ``abort()`` discards it, and leaving the
    ``with`` block on an exception aborts it too, so a failed write never leaves
    an object behind.
    """

    def __init__(
        self, client: Any, location: S3Location, *, encryption: Encryption, part_size: int = PART_SIZE
    ) -> None:
        super().__init__()
        self._client = client
        self.location = location
        self._part_size = part_size
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._finished = False
        self.bytes_written = 0
        with s3_errors(f"start upload of {location}"):
            answer = client.create_multipart_upload(
                Bucket=location.bucket, Key=location.key, **encryption.args()
            )
        self._upload_id: str = answer["UploadId"]

    def writable(self) -> bool:
        """Always true."""
        return True

    def write(self, data: Any) -> int:
        """Buffer ``data`` and send every full part."""
        view = memoryview(data).cast("B")
        self._buffer += view
        self.bytes_written += len(view)
        while len(self._buffer) >= self._part_size:
            chunk = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            self._send(chunk)
        return len(view)

    def _send(self, chunk: bytes) -> None:
        number = len(self._parts) + 1
        with s3_errors(f"upload part {number} of {self.location}"):
            answer = self._client.upload_part(
                Bucket=self.location.bucket,
                Key=self.location.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=chunk,
            )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def close(self) -> None:
        """Send the last part and complete the upload."""
        if self._finished:
            return
        if self._buffer or not self._parts:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        with s3_errors(f"complete upload of {self.location}"):
            self._client.complete_multipart_upload(
                Bucket=self.location.bucket,
                Key=self.location.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._finished = True
        super().close()

    def abort(self) -> None:
        """Discard the upload; best effort, as the service may be the reason for aborting."""
        if self._finished:
            return
        self._finished = True
        self._buffer.clear()
        with suppress(ClientError, BotoCoreError):
            self._client.abort_multipart_upload(
                Bucket=self.location.bucket, Key=self.location.key, UploadId=self._upload_id
            )
        super().close()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class RangeReader(io.RawIOBase):
    """A seekable read-only view of one S3 object, fetched by HTTP range as it is read."""

    def __init__(self, client: Any, location: S3Location, size: int) -> None:
        super().__init__()
        self._client = client
        self.location = location
        self.size = size
        self._position = 0

    def readable(self) -> bool:
        """Always true."""
        return True

    def seekable(self) -> bool:
        """Always true."""
        return True

    def tell(self) -> int:
        """The current offset."""
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset``; no request is made until the next read."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the object at the current offset."""
        view = memoryview(buffer).cast("B")
        if self._position >= self.size or not len(view):
            return 0
        end = min(self.size, self._position + len(view)) - 1
        with s3_errors(f"read {self.location}"):
            answer = self._client.get_object(
                Bucket=self.location.bucket, Key=self.location.key, Range=f"bytes={self._position}-{end}"
            )
            data = answer["Body"].read()
        view[: len(data)] = data
        self._position += len(data)
        return len(data)


class Bucket:
    """The operations backups need, on one bucket."""

    def __init__(self, client: Any, name: str, encryption: Encryption = Encryption()) -> None:
        self.client = client
        self.name = name
        self.encryption = encryption

    def location(self, key: str) -> S3Location:
        """``key`` in this bucket."""
        return S3Location(self.name, key)

    def writer(self, key: str, part_size: int = PART_SIZE) -> MultipartWriter:
        """A streamed upload to ``key``."""
        return MultipartWriter(
            self.client, self.location(key), encryption=self.encryption, part_size=part_size
        )

    def size(self, key: str) -> int:
        """The object's size; :class:`ObjectMissing` when there is none."""
        with s3_errors(f"look up {self.location(key)}"):
            return int(self.client.head_object(Bucket=self.name, Key=key)["ContentLength"])

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""
        try:
            self.size(key)
        except ObjectMissing:
            return False
        return True

    def reader(self, key: str, buffer_size: int = 4 * 1024 * 1024) -> io.BufferedReader:
        """A buffered, seekable reader of ``key``."""
        return io.BufferedReader(RangeReader(self.client, self.location(key), self.size(key)), buffer_size)

    def chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The object's bytes in order, from one streamed GET."""
        with s3_errors(f"read {self.location(key)}"):
            body = self.client.get_object(Bucket=self.name, Key=key)["Body"]
            yield from body.iter_chunks(chunk_size)

    def put_json(self, key: str, value: Any) -> None:
        """Write ``value`` as a small JSON object."""
        body = json.dumps(value, indent=2, sort_keys=True).encode()
        with s3_errors(f"write {self.location(key)}"):
            self.client.put_object(
                Bucket=self.name, Key=key, Body=body, ContentType="application/json", **self.encryption.args()
            )

    def get_json(self, key: str) -> Any:
        """Read a JSON object; :class:`ObjectMissing` when there is none."""
        with s3_errors(f"read {self.location(key)}"):
            body = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        return json.loads(body)

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``."""
        with s3_errors(f"list {self.location(prefix)}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"]

    def folders(self, prefix: str) -> list[str]:
        """The immediate "folders" under ``prefix``, as full key prefixes ending in ``/``."""
        with s3_errors(f"list {self.location(prefix)}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=prefix, Delimiter="/"
            )
            return [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        keys = list(self.keys(prefix))
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            with s3_errors(f"delete under {self.location(prefix)}"):
                self.client.delete_objects(Bucket=self.name, Delete={"Objects": batch, "Quiet": True})
        return len(keys)
