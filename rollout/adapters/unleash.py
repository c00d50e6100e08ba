"""Flags kept in Unleash, driven through its Admin API.

A flag's audience is up to three ``flexibleRollout`` strategies in the plan's environment,
each titled so the rollout knows its own: ``rollout: percentage`` (``rollout``,
``stickiness: userId``, ``groupId`` the flag's name, which is exactly our bucketing),
``rollout: users`` (100 % with a ``userId IN`` constraint) and ``rollout: stores`` (100 %
with a constraint on the store field). Unleash admits a user when any strategy does, as
:meth:`FlagState.admits` does. While the flag is on, the percentage strategy stays, at 0
when no one is admitted by share, because an enabled flag with no strategy at all is on for
everyone; a flag off at 0 % has none, so restoring a fresh flag leaves it as it was.

Unleash has no compare-and-set: the flag's version is the id of its newest event, checked
just before writing, and every write is read back. Fences live in MongoDB
(:class:`~rollout.adapters.fences.FenceStore`), claimed before the write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from rollout.adapters.fences import FenceStore
from rollout.audience.bucketing import admitted
from rollout.audience.flag_state import Fence, FlagChange, FlagConflict, FlagState
from rollout.errors import InputRejected, RolloutError, ServiceRejected, ServiceUnavailable
from rollout.plan.loader import UNLEASH_MAX_VALUES

SERVICE = "Unleash"
PERCENTAGE, USERS, STORES = "rollout: percentage", "rollout: users", "rollout: stores"
MANAGED = (PERCENTAGE, USERS, STORES)


class UnleashSetupInvalid(InputRejected):
    """The Unleash server, token, project, environment or flag named in the plan cannot be used."""


@dataclass(frozen=True)
class _Feature:
    """A feature as read: its state in the environment and the ids of the rollout's strategies."""

    state: FlagState
    strategy_ids: dict[str, str]
    foreign: tuple[str, ...]


class UnleashFlags:
    """Reads and writes flags in one Unleash project and environment."""

    kind = "unleash"

    def __init__(
        self,
        url: str,
        token: str,
        project: str,
        environment: str,
        fences: FenceStore,
        *,
        store_field: str = "storeId",
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._url = url.rstrip("/")
        self._project = project
        self._environment = environment
        self._store_field = store_field
        self._fences = fences
        self._http = httpx.Client(
            base_url=self._url,
            headers={"Authorization": token, "Content-Type": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    @property
    def _where(self) -> str:
        return f"project {self._project}, environment {self._environment} at {self._url}"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None, *, missing: str | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as error:
            raise ServiceUnavailable(
                SERVICE, f"{method} {self._url}{path}: {type(error).__name__}: {error}"
            ) from error
        if response.status_code in (401, 403):
            raise UnleashSetupInvalid(
                f"Unleash at {self._url} refused the token "
                f"(HTTP {response.status_code}: {_message(response)}): "
                "give targets.unleash.api_token an admin or personal access token that may change "
                f"project {self._project}"
            )
        if response.status_code == 404 and missing is not None:
            raise UnleashSetupInvalid(missing)
        if response.status_code >= 500 or response.status_code == 429:
            raise ServiceUnavailable(
                SERVICE, f"{method} {path}: HTTP {response.status_code}: {_message(response)}"
            )
        if response.status_code >= 400:
            raise ServiceRejected(
                SERVICE, f"{method} {path}: HTTP {response.status_code}: {_message(response)}"
            )
        return response.json() if response.content else None

    def _feature_path(self, name: str) -> str:
        return f"/api/admin/projects/{self._project}/features/{name}"

    def _read(self, name: str) -> _Feature:
        feature = self._call(
            "GET",
            self._feature_path(name),
            missing=f"flag {name} is not in Unleash {self._where}: create it there (type release), "
            "or fix the plan's flag name or targets.unleash.project",
        )
        environments = {e["name"]: e for e in feature.get("environments", [])}
        env = environments.get(self._environment)
        if env is None:
            raise UnleashSetupInvalid(
                f"Unleash project {self._project} has no environment {self._environment} "
                f"(it has {', '.join(sorted(environments)) or 'none'}): fix targets.unleash.environment "
                "or enable the environment in the project"
            )
        ids: dict[str, str] = {}
        foreign: list[str] = []
        percentage, users, stores = 0.0, (), ()
        for strategy in env.get("strategies", []):
            title = strategy.get("title") or ""
            altered = title in MANAGED and self._altered(name, title, strategy)
            if title not in MANAGED or strategy.get("disabled") or altered:
                # Whatever else admits people (or one of ours changed by hand) is part of the
                # flag's effective audience: said, so that a change between steps is seen.
                foreign.append(_described(strategy))
                continue
            ids[title] = strategy["id"]
            if title == PERCENTAGE:
                percentage = float(strategy["parameters"].get("rollout", 0))
            else:
                values = tuple(strategy["constraints"][0]["values"]) if strategy.get("constraints") else ()
                users, stores = (values, stores) if title == USERS else (users, values)
        version, by, at = self._version(name)
        state = FlagState(
            name=name,
            enabled=bool(env.get("enabled")),
            percentage=percentage,
            users=users,
            stores=stores,
            version=version,
            updated_at=at,
            updated_by=by,
            foreign=tuple(foreign),
        )
        return _Feature(state, ids, tuple(foreign))

    def _altered(self, name: str, title: str, strategy: dict[str, Any]) -> bool:
        """Whether one of our strategies was changed by hand in a way that changes who it admits."""
        field = {USERS: "userId", STORES: self._store_field}.get(title)
        expected = self._strategy(name, title, 0, field, ())
        parameters = strategy.get("parameters") or {}
        if strategy.get("name") != expected["name"]:
            return True
        for key in ("stickiness", "groupId"):
            if parameters.get(key) != expected["parameters"][key]:
                return True
        constraints = strategy.get("constraints") or []
        if field is None:
            return bool(constraints)
        if str(parameters.get("rollout")) != "100":
            return True  # an allowlist admits every id it names
        return [(c.get("contextName"), c.get("operator"), bool(c.get("inverted"))) for c in constraints] != [
            (field, "IN", False)
        ]

    def _version(self, name: str) -> tuple[int, str | None, datetime | None]:
        """The id of the flag's newest event, who made it and when (as Unleash's event log says)."""
        found = self._call("GET", f"/api/admin/search/events?feature=IS:{name}&limit=1")
        events = (found or {}).get("events", [])
        if not events:
            return 0, None, None
        newest = events[0]
        try:
            at = datetime.fromisoformat(str(newest.get("createdAt")).replace("Z", "+00:00"))
        except ValueError:
            at = None
        return int(newest["id"]), newest.get("createdBy"), at

    def get(self, name: str) -> FlagState:
        """The flag in the plan's environment, its version the id of its newest Unleash event."""
        return self._read(name).state

    def check(self, names: Sequence[str]) -> None:
        """Reach the server with the token, find the project, the environment and every flag.

        A flag with strategies the rollout does not manage is refused: Unleash would admit
        whoever those strategies admit, beyond the rollout's audience.
        """
        projects = sorted(p["id"] for p in self._call("GET", "/api/admin/projects").get("projects", []))
        if self._project not in projects:
            raise UnleashSetupInvalid(
                f"Unleash at {self._url} has no project {self._project} (it has {', '.join(projects)}): "
                "fix targets.unleash.project"
            )
        for name in names:
            feature = self._read(name)
            if feature.foreign:
                raise UnleashSetupInvalid(
                    f"flag {name} in Unleash {self._where} has strategies the rollout does not manage "
                    f"({', '.join(feature.foreign)}): they would admit users beyond the rollout's audience; "
                    "remove them, the rollout writes its own"
                )

    def admits(self, name: str, user: str, percentage: float) -> bool:
        """flexibleRollout with ``stickiness: userId`` and ``groupId`` the flag: Unleash's normalized hash."""
        return admitted(name, user, percentage)

    def highest_fence(self, plan: str) -> int:
        """The highest epoch ``plan`` has written an Unleash flag with, from the fence store."""
        return self._fences.highest(plan)

    def set(
        self,
        name: str,
        change: FlagChange,
        *,
        expected_version: int | None = None,
        fence: Fence | None = None,
    ) -> FlagState:
        """Write the strategies and the environment's on/off so the flag admits ``change``; read it back.

        Narrowing turns the flag off before touching strategies; widening writes the strategies
        before turning it on, so no moment admits more than either the old or the new audience.
        """
        percentage = change.percentage
        if percentage is not None and not (0 <= percentage <= 100 and float(percentage).is_integer()):
            # The plan check refuses these already; a caller that gets here must not write them.
            raise InputRejected(
                f"Unleash flag {name}: {percentage:g} % is not a whole percentage from 0 to 100, "
                "which is all its flexibleRollout takes"
            )
        for kind, values in (("users", change.users), ("stores", change.stores)):
            if values is not None and len(values) > UNLEASH_MAX_VALUES:
                raise InputRejected(
                    f"Unleash flag {name}: {len(values)} {kind} is more than the {UNLEASH_MAX_VALUES} values "
                    "an Unleash constraint takes"
                )
        feature = self._read(name)
        if expected_version is not None and feature.state.version != expected_version:
            raise FlagConflict(
                f"Unleash flag {name} changed since it was read (event {feature.state.version}, "
                f"expected {expected_version}); re-read it"
            )
        if fence is not None:
            self._fences.claim(name, fence)
        wanted = change.applied_to(feature.state)
        env_path = f"{self._feature_path(name)}/environments/{self._environment}"
        if not wanted.enabled and feature.state.enabled:
            self._call("POST", f"{env_path}/off")
        self._write_strategies(name, env_path, feature, wanted)
        if wanted.enabled and not feature.state.enabled:
            self._call("POST", f"{env_path}/on")
        after = self._read(name).state
        if _audience(after) != _audience(wanted):
            raise FlagConflict(
                f"Unleash flag {name} reads back as {_audience(after)} after writing {_audience(wanted)}: "
                "someone else changed it at the same time; re-read it"
            )
        return after

    def _strategies(self, name: str, state: FlagState) -> dict[str, dict[str, Any] | None]:
        """Each of our strategies as it must be for the flag to admit ``state`` (None: not there)."""
        return {
            # Kept (at 0 %) while the flag is on: an enabled flag with no strategy is on for everyone.
            # A flag off at 0 % needs none, so a restore to a fresh flag leaves it as it was.
            PERCENTAGE: self._strategy(name, PERCENTAGE, state.percentage, None, ())
            if state.enabled or state.percentage
            else None,
            USERS: self._strategy(name, USERS, 100, "userId", state.users) if state.users else None,
            STORES: self._strategy(name, STORES, 100, self._store_field, state.stores)
            if state.stores
            else None,
        }

    def _write_strategies(self, name: str, env_path: str, feature: _Feature, wanted: FlagState) -> None:
        desired = self._strategies(name, wanted)
        current = feature.state
        unchanged = {
            PERCENTAGE: current.percentage == wanted.percentage,
            USERS: current.users == wanted.users,
            STORES: current.stores == wanted.stores,
        }
        changed: list[str] = []
        try:
            for title, body in desired.items():
                strategy_id = feature.strategy_ids.get(title)
                if body is None:
                    if strategy_id is not None:
                        self._call("DELETE", f"{env_path}/strategies/{strategy_id}")
                        changed.append(title)
                elif strategy_id is None:
                    self._call("POST", f"{env_path}/strategies", body)
                    changed.append(title)
                elif not unchanged[title]:
                    self._call("PUT", f"{env_path}/strategies/{strategy_id}", body)
                    changed.append(title)
        except RolloutError:
            # A write refused or lost part-way: the strategies already changed are put back, so the
            # flag admits its previous audience, never a mix wider than it.
            self._put_back(name, env_path, feature.state, changed)
            raise

    def _put_back(self, name: str, env_path: str, before: FlagState, titles: list[str]) -> None:
        """Best effort: the strategies named ``titles`` as they were in ``before``."""
        previous = self._strategies(name, before)
        try:
            ids = self._read(name).strategy_ids
            for title in reversed(titles):
                body, strategy_id = previous[title], ids.get(title)
                if body is None and strategy_id is not None:
                    self._call("DELETE", f"{env_path}/strategies/{strategy_id}")
                elif body is not None and strategy_id is None:
                    self._call("POST", f"{env_path}/strategies", body)
                elif body is not None:
                    self._call("PUT", f"{env_path}/strategies/{strategy_id}", body)
        except RolloutError:
            pass  # Unleash is gone too: the read-back of the next attempt sees what is there

    @staticmethod
    def _strategy(
        name: str, title: str, rollout: float, field: str | None, values: tuple[str, ...]
    ) -> dict[str, Any]:
        constraints = [{"contextName": field, "operator": "IN", "values": list(values)}] if field else []
        # The share is sticky by user id; the allowlists admit everyone matching at 100 %, so
        # "default" stickiness lets a request with a store and no user through.
        stickiness = "default" if field else "userId"
        return {
            "name": "flexibleRollout",
            "title": title,
            "parameters": {"rollout": f"{rollout:g}", "stickiness": stickiness, "groupId": name},
            "constraints": constraints,
        }


def _described(strategy: dict[str, Any]) -> str:
    """A strategy as a person reads it, e.g. ``untitled flexibleRollout (at 100%)``."""
    title = strategy.get("title") or f"untitled {strategy.get('name', 'strategy')}"
    parameters = strategy.get("parameters") or {}
    parts = [f"at {parameters['rollout']}%"] if "rollout" in parameters else []
    parts += [
        f"{c.get('contextName')} {'NOT ' if c.get('inverted') else ''}{c.get('operator')}"
        for c in strategy.get("constraints") or []
    ]
    parts += [f"{key} {parameters[key]}" for key in ("groupId", "stickiness") if key in parameters]
    if strategy.get("disabled"):
        parts.append("disabled")
    return f"{title} ({', '.join(parts)})" if parts else title


def _audience(state: FlagState) -> tuple[bool, float, tuple[str, ...], tuple[str, ...]]:
    return state.enabled, state.percentage, tuple(sorted(state.users)), tuple(sorted(state.stores))


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        details = "; ".join(str(d.get("message", d)) for d in body.get("details", []) if isinstance(d, dict))
        return str(body.get("message") or body.get("error") or body) + (f" ({details})" if details else "")
    return str(body)[:200]
