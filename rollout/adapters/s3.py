"""S3 through boto3: the client, object locations, encryption, and errors mapped onto ours.

A bucket's operations are in :mod:`rollout.adapters.bucket`, its streams in
:mod:`rollout.adapters.s3_streams`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
