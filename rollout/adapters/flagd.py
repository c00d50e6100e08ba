"""Flags kept in a flagd flag-definition file, as flagd and OpenFeature's in-process providers read it.

Each flag the rollout manages is a boolean flag with variants ``on``/``off``, default
``off``, whose targeting admits the allowlisted users, then the stores, then a share by
flagd's ``fractional`` operation::

    {"if": [{"in": [{"var": "targetingKey"}, [users]]}, "on",
            {"in": [{"var": "storeId"}, [stores]]}, "on",
            {"fractional": [["on", 2500], ["off", 7500]]}]}

Weights are in hundredths of a percent. ``fractional`` with no bucketing expression hashes
the flag key followed by the targeting key (murmur3, 32 bits) and takes ``hash * total >> 32``,
so a user admitted at 10 % stays admitted at 25 %: :func:`flagd_admits` is that rule, as the
OpenFeature flagd providers for Node (flagd-core 4) and Python (0.5, flagd-core 1) apply it.
A disabled flag is ``state: DISABLED``: the SDKs then answer the application's default.

The definitions live in a file (rewritten whole under an exclusive lock and replaced
atomically, so a reader never sees half of it) or in a key of a Kubernetes ConfigMap
(replaced naming the resourceVersion read, so a concurrent change is read again), which
flagd or a mounted volume serves to the applications. The flag's ``metadata`` keeps its
version and each plan's fence, written in the same replacement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import mmh3

from rollout.adapters.flagd_sources import ConfigMapSource, DefinitionSource, FileSource, FlagdSetupInvalid
from rollout.adapters.kubernetes import Cluster
from rollout.audience.bucketing import InvalidUserId
from rollout.audience.flag_state import Fence, FencedOff, FlagChange, FlagConflict, FlagState

SCHEMA = "https://flagd.dev/schema/v0/flags.json"
WEIGHTS = 10_000
FENCE_PREFIX = "rollout.fence."


def flagd_admits(name: str, user: str, percentage: float) -> bool:
    """Whether flagd's ``fractional`` puts ``user`` in the ``on`` share of flag ``name`` at ``percentage``."""
    if percentage <= 0 or not user:
        return False
    try:
        key = f"{name}{user}".encode()
    except UnicodeEncodeError:
        raise InvalidUserId(f"user id {user!r} is not valid Unicode: it has no UTF-8 form to hash") from None
    bucket = (mmh3.hash(key, 0, signed=False) * WEIGHTS) >> 32
    return bucket < _weight(percentage)


def _weight(percentage: float) -> int:
    return round(min(max(percentage, 0.0), 100.0) * WEIGHTS / 100)


def flag_definition(state: FlagState, store_field: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The flagd definition that admits exactly ``state``'s audience."""
    on = _weight(state.percentage)
    return {
        "state": "ENABLED" if state.enabled else "DISABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {
            "if": [
                {"in": [{"var": "targetingKey"}, list(state.users)]},
                "on",
                {"in": [{"var": store_field}, list(state.stores)]},
                "on",
                {"fractional": [["on", on], ["off", WEIGHTS - on]]},
            ]
        },
        "metadata": {**metadata, "version": state.version},
    }


class FlagdFlags:
    """Reads and writes flags in flagd definitions kept by a :class:`DefinitionSource`."""

    kind = "flagd"

    def __init__(self, source: DefinitionSource, *, store_field: str = "storeId") -> None:
        self._source = source
        self._store_field = store_field

    def close(self) -> None:
        """Nothing is held open between calls."""

    def _parse(self, text: str | None) -> dict[str, Any]:
        where = self._source.where
        if text is None:
            raise FlagdSetupInvalid(f'{where} holds no definitions: put {{"flags": {{}}}} there')
        try:
            document = json.loads(text)
        except ValueError as error:
            raise FlagdSetupInvalid(f"{where} is not JSON ({error}): fix or recreate it") from None
        if not isinstance(document, dict) or not isinstance(document.get("flags", {}), dict):
            raise FlagdSetupInvalid(f'{where} has no "flags" object: it is not a flagd definition')
        return document

    def _load(self) -> dict[str, Any]:
        return self._parse(self._source.read())

    def _definition(self, document: dict[str, Any], name: str) -> dict[str, Any]:
        flag = document.get("flags", {}).get(name)
        if flag is None:
            raise FlagdSetupInvalid(
                f"flag {name} is not in {self._source.where}: add it (a boolean flag with variants "
                'on/off, defaultVariant "off", state "DISABLED"), or fix the plan\'s flag name'
            )
        return dict(flag)

    def _state(self, name: str, flag: dict[str, Any]) -> FlagState:
        try:
            rule = flag["targeting"]["if"]
            users, stores = tuple(rule[0]["in"][1]), tuple(rule[2]["in"][1])
            on = int(rule[4]["fractional"][0][1])
        except (KeyError, IndexError, TypeError, ValueError):
            if flag.get("targeting"):
                raise FlagdSetupInvalid(
                    f"flag {name} in {self._source.where} has targeting the rollout does not manage: "
                    "remove its targeting, the rollout writes its own"
                ) from None
            users, stores, on = (), (), WEIGHTS if flag.get("defaultVariant") == "on" else 0
        return FlagState(
            name=name,
            enabled=flag.get("state") == "ENABLED",
            percentage=on * 100 / WEIGHTS,
            users=users,
            stores=stores,
            version=int(flag.get("metadata", {}).get("version", 0)),
        )

    def get(self, name: str) -> FlagState:
        """The flag as the definitions have it."""
        return self._state(name, self._definition(self._load(), name))

    def check(self, names: Sequence[str]) -> None:
        """The definitions exist, can be replaced, and hold every flag in a shape the rollout manages."""
        document = self._load()
        for name in names:
            self._state(name, self._definition(document, name))
        self._source.check_writable()

    def admits(self, name: str, user: str, percentage: float) -> bool:
        """flagd's ``fractional`` bucketing."""
        return flagd_admits(name, user, percentage)

    def highest_fence(self, plan: str) -> int:
        """The highest epoch ``plan`` has written any flag of the definitions with (0 if none)."""
        flags = self._load().get("flags", {}).values()
        return max((int(f.get("metadata", {}).get(FENCE_PREFIX + plan, 0)) for f in flags), default=0)

    def set(
        self,
        name: str,
        change: FlagChange,
        *,
        expected_version: int | None = None,
        fence: Fence | None = None,
    ) -> FlagState:
        """Rewrite the flag's definition, its version and fence checked in the same replacement."""

        def rewrite(text: str | None) -> str:
            document = self._parse(text)
            flag = self._definition(document, name)
            current = self._state(name, flag)
            if expected_version is not None and current.version != expected_version:
                raise FlagConflict(f"flag {name} is no longer at version {expected_version}; re-read it")
            metadata = dict(flag.get("metadata", {}))
            if fence is not None:
                newest = int(metadata.get(FENCE_PREFIX + fence.plan, 0))
                if newest > fence.epoch:
                    raise FencedOff(
                        f"flag {name} was written for plan {fence.plan} at epoch {newest}, after this run's "
                        f"epoch {fence.epoch} (a rollback or a resumed run took the plan): not written"
                    )
                metadata[FENCE_PREFIX + fence.plan] = fence.epoch
            wanted = replace(change.applied_to(current), version=current.version + 1)
            document.setdefault("$schema", SCHEMA)
            document["flags"] = {
                **document["flags"],
                name: flag_definition(wanted, self._store_field, metadata),
            }
            return json.dumps(document, indent=2)

        self._source.update(rewrite)
        return self.get(name)


class FlagdFile(FlagdFlags):
    """flagd definitions in a JSON file."""

    def __init__(self, path: str | Path, *, store_field: str = "storeId") -> None:
        super().__init__(FileSource(path), store_field=store_field)


class FlagdConfigMap(FlagdFlags):
    """flagd definitions in a key of a ConfigMap, which flagd or a mounted volume serves."""

    def __init__(self, cluster: Cluster, name: str, key: str, *, store_field: str = "storeId") -> None:
        super().__init__(ConfigMapSource(cluster, name, key), store_field=store_field)
