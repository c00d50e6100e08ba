"""Where flagd definitions are kept: a JSON file, or a key of a Kubernetes ConfigMap.

Both are read whole and replaced whole by a read-modify-write with no other writer in between:
the file under a lock file beside it (replaced atomically, so a reader never sees half of it),
the ConfigMap naming the resourceVersion read (a concurrent change is read again).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from rollout.adapters.kubernetes import Cluster
from rollout.adapters.kubernetes_errors import KubernetesObjectMissing
from rollout.errors import InputRejected, ServiceUnavailable


class FlagdSetupInvalid(InputRejected):
    """The flagd file named in the plan, or a flag in it, cannot be used."""


class DefinitionSource(Protocol):
    """Where the flagd definitions are kept: read whole, and replaced whole by a read-modify-write."""

    where: str

    def read(self) -> str | None:
        """The definitions' text, None when the place exists but holds none."""
        ...

    def update(self, change: Callable[[str | None], str]) -> None:
        """Replace the text with ``change(current text)``, with no other writer in between."""
        ...

    def check_writable(self) -> None:
        """Raise :class:`FlagdSetupInvalid` if the definitions cannot be replaced."""
        ...


class FileSource:
    """A JSON file, replaced atomically under a lock file beside it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.where = f"flagd file {self.path}"

    def read(self) -> str | None:
        """The file's text."""
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FlagdSetupInvalid(
                f"{self.where} does not exist: fix targets.flagd.path, or create the file your flagd or "
                'OpenFeature provider reads, e.g. {"flags": {}}'
            ) from None
        except OSError as error:
            raise ServiceUnavailable("flagd file", f"{self.path}: {error}") from error

    def update(self, change: Callable[[str | None], str]) -> None:
        """Rewrite the file under its lock."""
        with self._locked():
            self._replace(change(self.read()))

    def check_writable(self) -> None:
        """The file and its folder can be written by this process."""
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            raise FlagdSetupInvalid(f"{self.where} cannot be written by this process: fix its permissions")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # A lock file beside the definitions: the definitions themselves are replaced, not edited.
        with open(f"{self.path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _replace(self, text: str) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class ConfigMapSource:
    """A key of a ConfigMap in the service's namespace, replaced naming the resourceVersion read."""

    def __init__(self, cluster: Cluster, name: str, key: str) -> None:
        self._cluster, self._name, self._key = cluster, name, key
        self.where = f"ConfigMap {cluster.namespace}/{name} (key {key})"

    def read(self) -> str | None:
        """The key's text, None when the ConfigMap lacks the key."""
        try:
            return self._cluster.config_map_text(self._name, self._key)
        except KubernetesObjectMissing:
            raise FlagdSetupInvalid(
                f"ConfigMap {self._name} does not exist in namespace {self._cluster.namespace}: fix "
                "targets.flagd.configmap, or create the ConfigMap flagd or your pods' volume reads"
            ) from None

    def update(self, change: Callable[[str | None], str]) -> None:
        """Replace the key, read again and recomputed after a conflict."""
        self._cluster.update_config_map(self._name, self._key, change)

    def check_writable(self) -> None:
        """A refused write names the missing right when it happens; reading proved the rest."""
