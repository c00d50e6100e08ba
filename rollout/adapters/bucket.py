"""One S3 bucket: objects written and read as streams, JSON documents, listings, deletes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from rollout.adapters.s3 import PART_SIZE, Encryption, ObjectMissing, S3Location, s3_errors
from rollout.adapters.s3_streams import MultipartWriter, RangeReader


class Bucket:
    """The operations backups need, on one bucket."""

    def __init__(self, client: Any, name: str, encryption: Encryption | None = None) -> None:
        """``encryption``: how new objects are encrypted (default: the bucket's own setting)."""
        self.client = client
        self.name = name
        self.encryption = encryption or Encryption()

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
