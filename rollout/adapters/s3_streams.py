"""Objects streamed through S3: multipart writes and ranged reads.

Nothing here holds an object whole: :class:`MultipartWriter` keeps one part in
memory and :class:`RangeReader` fetches the ranges it is asked for, so an
archive of any size passes through a fixed amount of memory.
"""

from __future__ import annotations

import io
from contextlib import suppress
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rollout.adapters.s3 import PART_SIZE, Encryption, S3Location, s3_errors


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
