"""Kubernetes through the official client: traffic weights and going back to the stable release.

Every write carries the ``resourceVersion`` it was computed from, so a concurrent
change makes the API server answer 409; a JSON patch also tests the list item it
changes, so a list that changed meanwhile (a sidecar injected) makes it answer 422.
Either way the object is read again and the change computed again, with jittered
backoff between attempts. Weights and replica counts are JSON merge patches; an
image is a JSON patch of one list item; going back a revision replaces the pod
template and the annotations whole, as ``kubectl rollout undo`` does.

One class though long: the routers' writes and the Deployment's (image, undo) share the
guarded call, the conflict loop and the fence, and change together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from kubernetes import client as k8s
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from rollout.adapters.kubernetes_errors import (
    SERVICE,
    Conflict,
    DeploymentPaused,
    KubernetesConflict,
    KubernetesObjectMissing,
    kubernetes_errors,
)
from rollout.adapters.routers import RouterState, router_for
from rollout.audience.flag_state import Fence, FencedOff
from rollout.breaker import guarded
from rollout.errors import ServiceRejected
from rollout.plan.model import RouterSettings

MERGE_PATCH = "application/merge-patch+json"
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
GATEWAY = ("gateway.networking.k8s.io", "v1", "httproutes")
CONFLICT_ATTEMPTS = 5
CONFLICT_BACKOFF_SECONDS = 0.1
"""The first backoff after a conflict; it doubles, with full jitter, up to the maximum below."""
CONFLICT_BACKOFF_MAX_SECONDS = 2.0
UNDO_KEEPS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
"""Annotations ``kubectl rollout undo`` keeps from the Deployment; the others come from the revision."""
Object = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class DeploymentChange:
    """What going back to the stable release changed."""

    deployment: str
    how: str
    before: str
    after: str


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
    """The operations a rollout needs, in one namespace; ``sleep`` waits between conflicting writes."""

    def __init__(
        self, api: k8s.ApiClient, namespace: str, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._api = api
        self.namespace = namespace
        self._sleep = sleep
        self._apps = k8s.AppsV1Api(api)
        self._networking = k8s.NetworkingV1Api(api)
        self._custom = k8s.CustomObjectsApi(api)
        self._core = k8s.CoreV1Api(api)
        self._endpoint = str(api.configuration.host)

    def close(self) -> None:
        """Close the connections to the API server."""
        self._api.close()  # type: ignore[no-untyped-call]

    def _guarded(self, action: str, kind: str, name: str, fn: Callable[[], T], tested: bool = False) -> T:
        """Call the API through this cluster's circuit breaker, errors translated."""

        def call() -> T:
            with kubernetes_errors(action, kind, name, self.namespace, self._endpoint, tested):
                return fn()

        return guarded(SERVICE, self._endpoint, call)

    def until_written(self, kind: str, name: str, change: Callable[[], T]) -> T:
        """Run ``change`` (read, compute, write) again after each conflict, backing off with jitter."""
        attempts = Retrying(
            retry=retry_if_exception_type(Conflict),
            stop=stop_after_attempt(CONFLICT_ATTEMPTS),
            wait=wait_random_exponential(CONFLICT_BACKOFF_SECONDS, CONFLICT_BACKOFF_MAX_SECONDS),
            sleep=self._sleep,
        )
        try:
            return attempts(change)
        except RetryError as error:
            raise KubernetesConflict(
                SERVICE,
                f"{kind} {self.namespace}/{name} changed between each read and write, {CONFLICT_ATTEMPTS} "
                "times: another writer is changing it; try again once it is done",
            ) from error.last_attempt.exception()

    def update_config_map(self, name: str, key: str, change: Callable[[str | None], str]) -> str:
        """Replace ``data[key]`` of ConfigMap ``name`` with ``change(current text)``; the text written.

        The write names the resourceVersion read, so a concurrent change is a conflict: read
        again and recompute, as every other write here.
        """

        def attempt() -> str:
            found = self._guarded(
                "read", "ConfigMap", name, lambda: self._core.read_namespaced_config_map(name, self.namespace)
            )
            text = change((found.data or {}).get(key))
            found.data = {**(found.data or {}), key: text}
            self._guarded(
                "replace",
                "ConfigMap",
                name,
                lambda: self._core.replace_namespaced_config_map(name, self.namespace, found),
            )
            return text

        return self.until_written("ConfigMap", name, attempt)

    def config_map_text(self, name: str, key: str) -> str | None:
        """``data[key]`` of ConfigMap ``name``, None when it has no such key."""
        found = self._guarded(
            "read", "ConfigMap", name, lambda: self._core.read_namespaced_config_map(name, self.namespace)
        )
        return (found.data or {}).get(key)

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
        is_json_patch = isinstance(body, list)
        tested = is_json_patch and any(op.get("op") == "test" for op in body)
        patched = self._guarded(
            "patch",
            "Deployment",
            name,
            lambda: self._apps.patch_namespaced_deployment(
                name, self.namespace, body, _content_type=None if is_json_patch else MERGE_PATCH
            ),
            tested,
        )
        return self._plain(patched)

    def ingress(self, name: str) -> Object:
        """The Ingress as a plain dict."""
        read = self._guarded(
            "read", "Ingress", name, lambda: self._networking.read_namespaced_ingress(name, self.namespace)
        )
        return self._plain(read)

    def patch_ingress(self, name: str, body: Object) -> None:
        """Merge-patch the Ingress."""
        self._guarded(
            "patch",
            "Ingress",
            name,
            lambda: self._networking.patch_namespaced_ingress(
                name, self.namespace, body, _content_type=MERGE_PATCH
            ),
        )

    def route(self, name: str) -> Object:
        """The HTTPRoute as a plain dict."""
        route = self._guarded(
            "read",
            "HTTPRoute",
            name,
            lambda: self._custom.get_namespaced_custom_object(*GATEWAY[:2], self.namespace, GATEWAY[2], name),
        )
        return cast(Object, route)

    def patch_route(self, name: str, body: Object) -> None:
        """Merge-patch the HTTPRoute."""
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
    def version_of(obj: Object) -> dict[str, str]:
        """The metadata that makes a patch fail with a conflict if ``obj`` changed since it was read."""
        version = obj["metadata"].get("resourceVersion")
        return {"resourceVersion": version} if version else {}

    @staticmethod
    def _pinned(obj: Object, patch: list[Object]) -> list[Object]:
        """``patch`` plus the resourceVersion it was computed from, so a concurrent change gets a 409."""
        version = obj["metadata"].get("resourceVersion")
        pin = [{"op": "replace", "path": "/metadata/resourceVersion", "value": version}] if version else []
        return pin + patch

    # --- traffic (the router kinds are in rollout.adapters.routers) -------------------------

    def router_state(self, router: RouterSettings) -> RouterState:
        """The router's current split."""
        return router_for(self, router).state()

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
        kind = router_for(self, router)
        before = kind.state()
        kind.set_weight(max(0, min(100, percent)), before, total_replicas, fence)
        return before

    def scale(self, name: str, replicas: int, fence: Fence | None = None) -> None:
        """Set a Deployment's replicas (fenced), read again after a conflict."""

        def change() -> None:
            current = self.deployment(name)
            mark = self.fenced(current, fence)
            metadata = {**self.version_of(current), **({"annotations": mark} if mark else {})}
            self._patch_deployment(name, {"metadata": metadata, "spec": {"replicas": replicas}})

        self.until_written("Deployment", name, change)

    fenced = staticmethod(_fenced)

    # --- back to the stable release ------------------------------------------------------

    def image(self, name: str, container: str | None = None) -> str:
        """The image of ``container`` (or the first container) of the Deployment."""
        containers = self.deployment(name)["spec"]["template"]["spec"]["containers"]
        return str(containers[self._container_index(containers, container, name)]["image"])

    def _container_index(self, containers: list[Object], container: str | None, name: str) -> int:
        if container is None:
            return 0
        for index, spec in enumerate(containers):
            if spec.get("name") == container:
                return index
        raise KubernetesObjectMissing(f"Deployment {self.namespace}/{name} has no container {container!r}")

    def _refuse_paused(self, deployment: Object) -> None:
        """A paused Deployment would take the new template and roll nothing out: say so instead."""
        if deployment["spec"].get("paused"):
            name = deployment["metadata"]["name"]
            raise DeploymentPaused(
                f"Deployment {self.namespace}/{name} is paused, so a new pod template would not roll out: "
                f"resume it first with `kubectl rollout resume deployment/{name} -n {self.namespace}` and "
                "run the rollback again (kubectl rollout undo refuses a paused Deployment too)"
            )

    def set_image(self, name: str, image: str, container: str | None = None) -> DeploymentChange:
        """Point the container at ``image`` (a JSON patch that first tests the container's name)."""

        def change() -> DeploymentChange:
            deployment = self.deployment(name)
            self._refuse_paused(deployment)
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

        return self.until_written("Deployment", name, change)

    def undo(self, name: str, container: str | None = None) -> DeploymentChange:
        """``kubectl rollout undo``: the previous revision's pod template and annotations (change-cause).

        The change reports ``container``'s image (or the first container's) before and after.
        """

        def change() -> DeploymentChange:
            deployment = self.deployment(name)
            self._refuse_paused(deployment)
            annotations = deployment["metadata"].get("annotations") or {}
            current = int(annotations.get(REVISION, "0") or 0)
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
            restored = _undone_annotations(annotations, previous["metadata"].get("annotations") or {})
            now = deployment["spec"]["template"]["spec"]["containers"]
            then = template["spec"]["containers"]
            before = now[self._container_index(now, container, name)]["image"]
            after = then[self._container_index(then, container, f"{name} revision {current - 1}")]["image"]
            # A JSON patch replaces the template whole, as `kubectl rollout undo` does; a merge patch
            # would keep fields the newer template added.
            replace = [
                {"op": "replace", "path": "/spec/template", "value": template},
                {"op": "add", "path": "/metadata/annotations", "value": restored},
            ]
            self._patch_deployment(name, self._pinned(deployment, replace))
            revision = previous["metadata"]["annotations"][REVISION]
            cause = restored.get(CHANGE_CAUSE)
            how = f"revision {revision}" + (f": {cause}" if cause else "")
            return DeploymentChange(name, how, str(before), str(after))

        return self.until_written("Deployment", name, change)


def _undone_annotations(deployment: dict[str, str], revision: dict[str, str]) -> dict[str, str]:
    """The Deployment's annotations after an undo: kubectl's, and our fences kept as they are."""
    kept = {k: v for k, v in deployment.items() if k in UNDO_KEEPS or k.startswith(FENCE_PREFIX)}
    return {**{k: v for k, v in revision.items() if k not in UNDO_KEEPS}, **kept}
