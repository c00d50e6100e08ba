"""The demo's workload in a Kubernetes cluster: a Deployment with a release history, a canary Ingress.

``rollout demo --kubernetes KUBECONFIG`` puts these in one namespace (``rollout-demo``
unless told otherwise) of any cluster, even one without nodes: the Deployment is rolled
from the stable image to the candidate by the cluster's own deployment controller, so
the rollback has a real revision to go back to, and the canary Ingress carries the
weight the rollout moves. Nothing outside that namespace is touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from rollout.adapters.kubernetes import CHANGE_CAUSE, REVISION
from rollout.adapters.routers import CANARY, CANARY_WEIGHT
from rollout.errors import SandboxError
from rollout.plan.model import KubernetesTarget, RouterSettings

DEMO_NAMESPACE = "rollout-demo"
DEMO_DEPLOYMENT = "orders"
DEMO_CONTAINER = "orders"
DEMO_CANARY_INGRESS = "orders-canary"
DEMO_REPOSITORY = "registry.example.com/orders"
READY_SECONDS = 60.0


def demo_target(
    kubeconfig: str, namespace: str = DEMO_NAMESPACE, context: str | None = None
) -> KubernetesTarget:
    """The plan's Kubernetes target for the demo's workload."""
    return KubernetesTarget(
        namespace=namespace,
        deployment=DEMO_DEPLOYMENT,
        kubeconfig=kubeconfig,
        context=context,
        router=RouterSettings(kind="nginx-canary", name=DEMO_CANARY_INGRESS),
        image_repository=DEMO_REPOSITORY,
        container=DEMO_CONTAINER,
    )


def prepare_demo(api: k8s.ApiClient, namespace: str, stable: str, candidate: str) -> None:
    """The namespace, the Deployment rolled from ``stable`` to ``candidate``, the canary at weight 0."""
    core: Any = k8s.CoreV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": namespace}})
    except ApiException as error:
        if error.status != 409:
            raise SandboxError(
                f"cannot create namespace {namespace}: {error.status} {error.reason}"
            ) from error
    images = [f"{DEMO_REPOSITORY}:{stable}", f"{DEMO_REPOSITORY}:{candidate}"]
    roll_through(api, namespace, DEMO_DEPLOYMENT, DEMO_CONTAINER, images)
    networking: Any = k8s.NetworkingV1Api(api)
    canary = {
        "metadata": {"name": DEMO_CANARY_INGRESS, "annotations": {CANARY: "true", CANARY_WEIGHT: "0"}},
        "spec": {"rules": [{"host": "orders.example.com"}]},
    }
    try:
        networking.create_namespaced_ingress(namespace, canary)
    except ApiException as error:
        if error.status != 409:
            raise SandboxError(f"cannot create Ingress {DEMO_CANARY_INGRESS}: {error.reason}") from error
        networking.patch_namespaced_ingress(DEMO_CANARY_INGRESS, namespace, {"metadata": canary["metadata"]})


def roll_through(
    api: k8s.ApiClient,
    namespace: str,
    name: str,
    container: str,
    images: list[str],
    sidecars: list[dict[str, Any]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Create the Deployment if need be, then roll it to each image in turn, as `kubectl set image` does.

    Each change records its ``change-cause``; each waits until the deployment controller
    has made (or reused) the ReplicaSet of that revision.
    """
    apps: Any = k8s.AppsV1Api(api)
    try:
        current = apps.read_namespaced_deployment(name, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        current = None
    for image in images:
        cause = f"set image {container}={image}"
        if current is None:
            labels = {"app": name}
            containers = [*(sidecars or []), {"name": container, "image": image}]
            current = apps.create_namespaced_deployment(
                namespace,
                {
                    "metadata": {"name": name, "annotations": {CHANGE_CAUSE: cause}},
                    "spec": {
                        "replicas": 2,
                        "selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
                    },
                },
            )
        elif any(c.name == container and c.image == image for c in current.spec.template.spec.containers):
            pass  # on it already (an undo, say): still wait for the controller to have taken that up
        else:
            patch = {
                "metadata": {"annotations": {CHANGE_CAUSE: cause}},
                "spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}},
            }
            current = apps.patch_namespaced_deployment(name, namespace, patch)
        _wait_for_revision(apps, namespace, name, sleep)
        current = apps.read_namespaced_deployment(name, namespace)


def _wait_for_revision(apps: Any, namespace: str, name: str, sleep: Callable[[float], None]) -> None:
    """Until the controller has seen the Deployment's latest generation and numbered its revision."""
    deadline = time.monotonic() + READY_SECONDS
    while True:
        found = apps.read_namespaced_deployment(name, namespace)
        seen = (found.status.observed_generation or 0) >= found.metadata.generation
        if seen and REVISION in (found.metadata.annotations or {}):
            return
        if time.monotonic() > deadline:
            raise SandboxError(
                f"the deployment controller did not take up Deployment {namespace}/{name} in "
                f"{READY_SECONDS:.0f} s: is kube-controller-manager running?"
            )
        sleep(0.2)
