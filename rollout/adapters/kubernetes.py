"""Kubernetes through the official client: traffic weights and going back to the stable release.

Every write is a JSON merge patch (or a JSON patch for list items) that carries
the ``resourceVersion`` it was computed from, so a concurrent change makes the
API server answer 409; the object is then read again and the change recomputed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from rollout.adapters.flags import Fence, FencedOff
from rollout.breaker import guarded
from rollout.errors import PermanentError, ServiceRejected, ServiceUnavailable
from rollout.plan.model import KubernetesTarget, RouterSettings

SERVICE = "Kubernetes"
MERGE_PATCH = "application/merge-patch+json"
REVISION = "deployment.kubernetes.io/revision"
CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
GATEWAY = ("gateway.networking.k8s.io", "v1", "httproutes")
CONFLICT_ATTEMPTS = 5
Object = dict[str, Any]
T = TypeVar("T")


class KubernetesObjectMissing(PermanentError):
    """The named object does not exist in the namespace."""


class _Conflict(Exception):
    """The object changed between our read and our write."""


@dataclass(frozen=True)
class RouterState:
    """A router's split: the canary's share in percent, and for ``replicas`` the replica counts."""

    canary_percent: int
    stable_replicas: int | None = None
    canary_replicas: int | None = None


@dataclass(frozen=True)
class DeploymentChange:
    """What going back to the stable release changed."""

    deployment: str
    how: str
    before: str
    after: str


@contextmanager
def kubernetes_errors(action: str, kind: str, name: str, namespace: str) -> Iterator[None]:
    """Translate client exceptions raised inside the block into ours, naming the object."""
    try:
        yield
    except ApiException as error:
        status = int(error.status or 0)
        if status == 404:
            raise KubernetesObjectMissing(
                f"{kind} {name!r} does not exist in namespace {namespace!r} ({action}): "
                "check targets.kubernetes in the plan"
            ) from error
        if status == 409:
            raise _Conflict(f"{action}: {kind} {namespace}/{name} changed meanwhile") from error
        if status >= 500 or status == 429 or status == 0:
            raise ServiceUnavailable(
                SERVICE, f"{action} {kind} {namespace}/{name}: {status} {error.reason}"
            ) from error
        raise ServiceRejected(
            SERVICE, f"{action} {kind} {namespace}/{name}: {status} {error.reason}"
        ) from error
    except HTTPError as error:
        raise ServiceUnavailable(SERVICE, f"{action} {kind} {namespace}/{name}: {error}") from error


def api_client(target: KubernetesTarget, token: str | None = None) -> k8s.ApiClient:
    """A client for the target's cluster: ``api_url`` (+ token), else the kubeconfig, else in-cluster."""
    if target.api_url:
        configuration = k8s.Configuration()
        configuration.host = target.api_url.rstrip("/")
        if token:
            configuration.api_key = {"authorization": f"Bearer {token}"}
        return k8s.ApiClient(configuration)
    try:
        configured: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=target.kubeconfig, context=target.context
        )
    except k8s_config.ConfigException:
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
        configured = k8s.ApiClient()
    return configured


def _with_retry_on_conflict(change: Callable[[], Any]) -> Any:
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            return change()
        except _Conflict:
            if attempt == CONFLICT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


FENCE_PREFIX = "rollout.fence/"
"""Annotation prefix under which a router object keeps the epoch each plan last wrote it with."""


def _fenced(obj: Object, fence: Fence | None) -> dict[str, str]:
    """The annotation a fenced write sets; :class:`FencedOff` if ``obj`` holds a newer epoch."""
    if fence is None:
        return {}
    key = FENCE_PREFIX + fence.plan
    annotations = obj.get("metadata", {}).get("annotations") or {}
    held = int(annotations.get(key, "0") or 0)
    if held > fence.epoch:
        name = obj.get("metadata", {}).get("name", "?")
        raise FencedOff(
            f"{obj.get('kind', 'object')} {name} was written for plan {fence.plan} with epoch {held}, newer "
            f"than this writer's {fence.epoch}: a rollback or a newer run holds the plan; changing nothing"
        )
    return {key: str(fence.epoch)}


class Cluster:
    """The operations a rollout needs, in one namespace."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self._api = api
        self.namespace = namespace
        self._apps = k8s.AppsV1Api(api)
        self._networking = k8s.NetworkingV1Api(api)
        self._custom = k8s.CustomObjectsApi(api)
        self._endpoint = str(api.configuration.host)

    def _guarded(self, action: str, kind: str, name: str, fn: Callable[[], T]) -> T:
        """Call the API through this cluster's circuit breaker, errors translated."""

        def call() -> T:
            with kubernetes_errors(action, kind, name, self.namespace):
                return fn()

        return guarded(SERVICE, self._endpoint, call)

    def _plain(self, value: Any) -> Object:
        plain: Object = self._api.sanitize_for_serialization(value)  # type: ignore[no-untyped-call]
        return plain

    # --- reading and patching, by kind ---------------------------------------------------

    def deployment(self, name: str) -> Object:
        """The Deployment as a plain dict."""
        read = self._guarded(
            "read", "Deployment", name, lambda: self._apps.read_namespaced_deployment(name, self.namespace)
        )
        return self._plain(read)

    def _patch_deployment(self, name: str, body: Any) -> Object:
        # A list is a JSON patch (the client picks its content type); a dict is sent as a merge patch.
        content = None if isinstance(body, list) else MERGE_PATCH
        with kubernetes_errors("patch", "Deployment", name, self.namespace):
            patched = self._apps.patch_namespaced_deployment(
                name, self.namespace, body, _content_type=content
            )
            return self._plain(patched)

    def _ingress(self, name: str) -> Object:
        read = self._guarded(
            "read", "Ingress", name, lambda: self._networking.read_namespaced_ingress(name, self.namespace)
        )
        return self._plain(read)

    def _patch_ingress(self, name: str, body: Object) -> None:
        self._guarded(
            "patch",
            "Ingress",
            name,
            lambda: self._networking.patch_namespaced_ingress(
                name, self.namespace, body, _content_type=MERGE_PATCH
            ),
        )

    def _route(self, name: str) -> Object:
        route = self._guarded(
            "read",
            "HTTPRoute",
            name,
            lambda: self._custom.get_namespaced_custom_object(*GATEWAY[:2], self.namespace, GATEWAY[2], name),
        )
        return cast(Object, route)

    def _patch_route(self, name: str, body: Object) -> None:
        self._guarded(
            "patch",
            "HTTPRoute",
            name,
            lambda: self._custom.patch_namespaced_custom_object(
                *GATEWAY[:2], self.namespace, GATEWAY[2], name, body, _content_type=MERGE_PATCH
            ),
        )

    def _replica_sets(self, deployment: Object) -> list[Object]:
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["selector"].get("matchLabels", {})
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        found = self._guarded(
            "list ReplicaSets of",
            "Deployment",
            name,
            lambda: self._apps.list_namespaced_replica_set(self.namespace, label_selector=selector),
        )
        uid = deployment["metadata"].get("uid")
        # As `kubectl rollout undo` does: only the ReplicaSets this Deployment controls.
        return [
            rs
            for rs in (self._plain(item) for item in found.items)
            if any(
                ref.get("kind") == "Deployment" and ref.get("controller") and ref.get("uid") == uid
                for ref in rs["metadata"].get("ownerReferences", [])
            )
        ]

    @staticmethod
    def _version(obj: Object) -> dict[str, str]:
        version = obj["metadata"].get("resourceVersion")
        return {"resourceVersion": version} if version else {}

    @staticmethod
    def _pinned(obj: Object, patch: list[Object]) -> list[Object]:
        """``patch`` plus the resourceVersion it was computed from, so a concurrent change gets a 409."""
        version = obj["metadata"].get("resourceVersion")
        pin = [{"op": "replace", "path": "/metadata/resourceVersion", "value": version}] if version else []
        return pin + patch

    # --- traffic -------------------------------------------------------------------------

    def router_state(self, router: RouterSettings) -> RouterState:
        """The router's current split."""
        if router.kind == "nginx-canary":
            annotations = self._ingress(router.name)["metadata"].get("annotations") or {}
            return RouterState(int(annotations.get(CANARY_WEIGHT, "0") or 0))
        if router.kind == "httproute":
            route = self._route(router.name)
            for rule in route.get("spec", {}).get("rules", []):
                weights = {ref["name"]: int(ref.get("weight", 1)) for ref in rule.get("backendRefs", [])}
                if router.canary_backend in weights:
                    total = sum(weights.values())
                    return RouterState(round(100 * weights[router.canary_backend] / total) if total else 0)
            raise ServiceRejected(
                SERVICE,
                f"HTTPRoute {self.namespace}/{router.name} has no backendRef {router.canary_backend!r}",
            )
        assert router.stable_backend is not None
        canary = int(self.deployment(router.name)["spec"].get("replicas", 0))
        stable = int(self.deployment(router.stable_backend)["spec"].get("replicas", 0))
        total = canary + stable
        return RouterState(round(100 * canary / total) if total else 0, stable, canary)

    def set_weight(
        self,
        router: RouterSettings,
        percent: int,
        total_replicas: int | None = None,
        fence: Fence | None = None,
    ) -> RouterState:
        """Send ``percent`` of traffic to the canary; returns the split as it was before.

        Given ``fence``, the object keeps the epoch it was written with (``rollout.fence/<plan>``),
        and a write with an older one than it holds is refused (:class:`FencedOff`), as for flags.
        """
        percent = max(0, min(100, percent))
        before = self.router_state(router)
        if router.kind == "nginx-canary":

            def change() -> None:
                ingress = self._ingress(router.name)
                annotations = {CANARY: "true", CANARY_WEIGHT: str(percent), **_fenced(ingress, fence)}
                self._patch_ingress(
                    router.name, {"metadata": {**self._version(ingress), "annotations": annotations}}
                )

            _with_retry_on_conflict(change)
        elif router.kind == "httproute":
            _with_retry_on_conflict(lambda: self._set_route_weights(router, percent, fence))
        else:
            total = total_replicas or (before.stable_replicas or 0) + (before.canary_replicas or 0)
            canary = math.ceil(total * percent / 100)
            assert router.stable_backend is not None
            # Stable scales up before the canary scales down, so capacity never dips.
            self._scale(router.stable_backend, total - canary, fence)
            self._scale(router.name, canary, fence)
        return before

    def _set_route_weights(self, router: RouterSettings, percent: int, fence: Fence | None = None) -> None:
        route = self._route(router.name)
        mark = _fenced(route, fence)
        rules = route.get("spec", {}).get("rules", [])
        touched = False
        for rule in rules:
            for ref in rule.get("backendRefs", []):
                if ref.get("name") == router.canary_backend:
                    ref["weight"], touched = percent, True
                elif ref.get("name") == router.stable_backend:
                    ref["weight"] = 100 - percent
        if not touched:
            raise ServiceRejected(
                SERVICE,
                f"HTTPRoute {self.namespace}/{router.name} has no backendRef {router.canary_backend!r}",
            )
        metadata = {**self._version(route), **({"annotations": mark} if mark else {})}
        self._patch_route(router.name, {"metadata": metadata, "spec": {"rules": rules}})

    def _scale(self, name: str, replicas: int, fence: Fence | None = None) -> None:
        def change() -> None:
            current = self.deployment(name)
            mark = _fenced(current, fence)
            metadata = {**self._version(current), **({"annotations": mark} if mark else {})}
            self._patch_deployment(name, {"metadata": metadata, "spec": {"replicas": replicas}})

        _with_retry_on_conflict(change)

    # --- back to the stable release ------------------------------------------------------

    def image(self, name: str, container: str | None = None) -> str:
        """The image of ``container`` (or the first container) of the Deployment."""
        containers = self.deployment(name)["spec"]["template"]["spec"]["containers"]
        index = self._container_index(containers, container, name)
        return str(containers[index]["image"])

    def _container_index(self, containers: list[Object], container: str | None, name: str) -> int:
        if container is None:
            return 0
        for index, spec in enumerate(containers):
            if spec.get("name") == container:
                return index
        raise KubernetesObjectMissing(f"Deployment {self.namespace}/{name} has no container {container!r}")

    def set_image(self, name: str, image: str, container: str | None = None) -> DeploymentChange:
        """Point the container at ``image`` (a JSON patch that first tests the container's name)."""

        def change() -> DeploymentChange:
            deployment = self.deployment(name)
            containers = deployment["spec"]["template"]["spec"]["containers"]
            index = self._container_index(containers, container, name)
            path = f"/spec/template/spec/containers/{index}"
            before = str(containers[index]["image"])
            patch: list[Object] = [
                {"op": "test", "path": f"{path}/name", "value": containers[index]["name"]},
                {"op": "replace", "path": f"{path}/image", "value": image},
            ]
            self._patch_deployment(name, self._pinned(deployment, patch))
            return DeploymentChange(name, "image", before, image)

        result: DeploymentChange = _with_retry_on_conflict(change)
        return result

    def undo(self, name: str) -> DeploymentChange:
        """``kubectl rollout undo``: restore the pod template of the previous revision's ReplicaSet."""

        def change() -> DeploymentChange:
            deployment = self.deployment(name)
            current = int(deployment["metadata"].get("annotations", {}).get(REVISION, "0") or 0)
            older = [
                rs
                for rs in self._replica_sets(deployment)
                if int(rs["metadata"].get("annotations", {}).get(REVISION, "0") or 0) < current
            ]
            if not older:
                raise ServiceRejected(
                    SERVICE,
                    f"Deployment {self.namespace}/{name} has no revision before {current} to go back to",
                )
            previous = max(older, key=lambda rs: int(rs["metadata"]["annotations"][REVISION]))
            template = previous["spec"]["template"]
            labels = {
                k: v for k, v in template["metadata"].get("labels", {}).items() if k != "pod-template-hash"
            }
            template = {**template, "metadata": {**template["metadata"], "labels": labels}}
            before = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
            # A JSON patch replaces the template whole, as `kubectl rollout undo` does; a merge patch
            # would keep fields the newer template added.
            replace = [{"op": "replace", "path": "/spec/template", "value": template}]
            self._patch_deployment(name, self._pinned(deployment, replace))
            return DeploymentChange(
                name,
                f"revision {previous['metadata']['annotations'][REVISION]}",
                str(before),
                str(template["spec"]["containers"][0]["image"]),
            )

        result: DeploymentChange = _with_retry_on_conflict(change)
        return result
