"""Traffic routers in Kubernetes: one class per kind, behind one interface, chosen by the plan's kind.

- ``nginx-canary``: the canary Ingress's ``canary-weight`` annotation;
- ``httproute``: the Gateway API HTTPRoute's backendRef weights (canary and stable);
- ``replicas``: the replica ratio of the canary and stable Deployments.

Each write is computed from a fresh read and sent naming the resourceVersion read, so a
concurrent change is a conflict the cluster reads again after (:meth:`Cluster.until_written`),
and carries the writer's fence (``rollout.fence/<plan>``), refused once a newer epoch wrote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rollout.audience.flag_state import Fence
from rollout.errors import ServiceRejected
from rollout.plan.model import RouterSettings

if TYPE_CHECKING:
    from rollout.adapters.kubernetes import Cluster

CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
SERVICE = "Kubernetes"


@dataclass(frozen=True)
class RouterState:
    """A router's split: the canary's share in percent, and for ``replicas`` the replica counts."""

    canary_percent: int
    stable_replicas: int | None = None
    canary_replicas: int | None = None


class Router(Protocol):
    """How one kind of router reads and sets the canary's share of traffic."""

    def state(self) -> RouterState:
        """The split as it is now."""
        ...

    def set_weight(
        self, percent: int, before: RouterState, total_replicas: int | None, fence: Fence | None
    ) -> None:
        """Send ``percent`` of traffic to the canary; ``before`` is the split just read."""
        ...


class NginxCanary:
    """A canary Ingress of ingress-nginx, weighted by its ``canary-weight`` annotation."""

    def __init__(self, cluster: Cluster, settings: RouterSettings) -> None:
        self._cluster, self._name = cluster, settings.name

    def state(self) -> RouterState:
        """The canary weight the annotation holds (0 when absent)."""
        annotations = self._cluster.ingress(self._name)["metadata"].get("annotations") or {}
        return RouterState(int(annotations.get(CANARY_WEIGHT, "0") or 0))

    def set_weight(
        self, percent: int, before: RouterState, total_replicas: int | None, fence: Fence | None
    ) -> None:
        """Annotate the Ingress with the weight (and the fence) in one merge patch."""

        def change() -> None:
            ingress = self._cluster.ingress(self._name)
            annotations = {
                CANARY: "true",
                CANARY_WEIGHT: str(percent),
                **self._cluster.fenced(ingress, fence),
            }
            metadata = {**self._cluster.version_of(ingress), "annotations": annotations}
            self._cluster.patch_ingress(self._name, {"metadata": metadata})

        self._cluster.until_written("Ingress", self._name, change)


class HttpRoute:
    """A Gateway API HTTPRoute splitting each rule between the canary and stable Services."""

    def __init__(self, cluster: Cluster, settings: RouterSettings) -> None:
        self._cluster, self._name = cluster, settings.name
        self._canary, self._stable = settings.canary_backend, settings.stable_backend

    def _missing(self) -> ServiceRejected:
        return ServiceRejected(
            SERVICE, f"HTTPRoute {self._cluster.namespace}/{self._name} has no backendRef {self._canary!r}"
        )

    def state(self) -> RouterState:
        """The canary's share of the first rule that routes to it."""
        for rule in self._cluster.route(self._name).get("spec", {}).get("rules", []):
            weights = {ref["name"]: int(ref.get("weight", 1)) for ref in rule.get("backendRefs", [])}
            if self._canary in weights:
                total = sum(weights.values())
                return RouterState(round(100 * weights[self._canary] / total) if total else 0)
        raise self._missing()

    def set_weight(
        self, percent: int, before: RouterState, total_replicas: int | None, fence: Fence | None
    ) -> None:
        """Weigh the canary ``percent`` and the stable the rest, in every rule."""

        def change() -> None:
            route = self._cluster.route(self._name)
            mark = self._cluster.fenced(route, fence)
            rules = route.get("spec", {}).get("rules", [])
            touched = False
            for rule in rules:
                for ref in rule.get("backendRefs", []):
                    if ref.get("name") == self._canary:
                        ref["weight"], touched = percent, True
                    elif ref.get("name") == self._stable:
                        ref["weight"] = 100 - percent
            if not touched:
                raise self._missing()
            metadata = {**self._cluster.version_of(route), **({"annotations": mark} if mark else {})}
            self._cluster.patch_route(self._name, {"metadata": metadata, "spec": {"rules": rules}})

        self._cluster.until_written("HTTPRoute", self._name, change)


class ReplicaRatio:
    """Two Deployments, canary and stable, whose replica counts split the traffic."""

    def __init__(self, cluster: Cluster, settings: RouterSettings) -> None:
        assert settings.stable_backend is not None  # the plan model requires it for this kind
        self._cluster, self._canary, self._stable = cluster, settings.name, settings.stable_backend

    def state(self) -> RouterState:
        """The canary's share of the replicas of both."""
        canary = int(self._cluster.deployment(self._canary)["spec"].get("replicas", 0))
        stable = int(self._cluster.deployment(self._stable)["spec"].get("replicas", 0))
        total = canary + stable
        return RouterState(round(100 * canary / total) if total else 0, stable, canary)

    def set_weight(
        self, percent: int, before: RouterState, total_replicas: int | None, fence: Fence | None
    ) -> None:
        """Scale both so the canary has ``percent`` of ``total_replicas`` (default: as many as now)."""
        total = total_replicas or (before.stable_replicas or 0) + (before.canary_replicas or 0)
        canary = math.ceil(total * percent / 100)
        sides = [
            (self._stable, total - canary, before.stable_replicas or 0),
            (self._canary, canary, before.canary_replicas or 0),
        ]
        # The side that grows is written first, so that between the two writes the pair
        # never asks for fewer replicas than the total: capacity does not dip either way.
        for name, replicas, _ in sorted(sides, key=lambda side: side[2] - side[1]):
            self._cluster.scale(name, replicas, fence)


ROUTERS: dict[str, type[NginxCanary] | type[HttpRoute] | type[ReplicaRatio]] = {
    "nginx-canary": NginxCanary,
    "httproute": HttpRoute,
    "replicas": ReplicaRatio,
}
"""Each router kind a plan may name, and the class that drives it."""


def router_for(cluster: Cluster, settings: RouterSettings) -> Router:
    """The router of ``settings.kind`` in ``cluster``."""
    return ROUTERS[settings.kind](cluster, settings)
