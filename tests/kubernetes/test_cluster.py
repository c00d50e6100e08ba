from typing import Any

import pytest
from kubernetes import client as k8s

from rollout.adapters.kubernetes import Cluster
from rollout.adapters.kubernetes_errors import KubernetesObjectMissing
from rollout.errors import ServiceRejected
from rollout.plan.model import RouterSettings
from tests.fencing import check_router_fencing
from tests.kmock_cluster import NAMESPACE, EmulatorThread, deployment, pod_template, replica_set

pytestmark = pytest.mark.integration

GATEWAY = ("gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes")


# The typed client wants model objects; these tests write the API's JSON as plain dicts.
def apps(api: k8s.ApiClient) -> Any:
    return k8s.AppsV1Api(api)


def networking(api: k8s.ApiClient) -> Any:
    return k8s.NetworkingV1Api(api)


def custom(api: k8s.ApiClient) -> Any:
    return k8s.CustomObjectsApi(api)


def test_nginx_canary_weight_is_set_and_the_previous_weight_returned(api: k8s.ApiClient) -> None:
    networking(api).create_namespaced_ingress(
        NAMESPACE,
        {
            "metadata": {
                "name": "orders-canary",
                "annotations": {"nginx.ingress.kubernetes.io/canary": "true"},
            },
            "spec": {"rules": [{"host": "orders.example.com"}]},
        },
    )
    cluster = Cluster(api, NAMESPACE)
    router = RouterSettings(kind="nginx-canary", name="orders-canary")
    assert cluster.set_weight(router, 25).canary_percent == 0
    assert cluster.set_weight(router, 50).canary_percent == 25
    annotations = networking(api).read_namespaced_ingress("orders-canary", NAMESPACE).metadata.annotations
    assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == "50"
    assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"


def test_httproute_backend_weights_move_together_and_other_backends_stay(api: k8s.ApiClient) -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "orders", "namespace": NAMESPACE},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "orders-stable", "port": 80, "weight": 100},
                        {"name": "orders-canary", "port": 80, "weight": 0},
                    ]
                },
                {"matches": [{"path": {"value": "/admin"}}], "backendRefs": [{"name": "admin", "port": 80}]},
            ]
        },
    }
    custom(api).create_namespaced_custom_object(*GATEWAY, route)
    router = RouterSettings(
        kind="httproute", name="orders", stable_backend="orders-stable", canary_backend="orders-canary"
    )
    cluster = Cluster(api, NAMESPACE)
    cluster.set_weight(router, 75)
    rules = custom(api).get_namespaced_custom_object(*GATEWAY, "orders")["spec"]["rules"]
    assert [(b["name"], b["weight"]) for b in rules[0]["backendRefs"]] == [
        ("orders-stable", 25),
        ("orders-canary", 75),
    ]
    assert rules[1]["backendRefs"] == [{"name": "admin", "port": 80}]
    assert cluster.router_state(router).canary_percent == 75


def test_replica_ratio_keeps_the_total_and_scales_stable_up_first(
    api: k8s.ApiClient, emulator: EmulatorThread
) -> None:
    apps(api).create_namespaced_deployment(
        NAMESPACE, deployment("orders", "orders:v1", 1, "u-stable", replicas=10)
    )
    apps(api).create_namespaced_deployment(
        NAMESPACE, deployment("orders-canary", "orders:v2", 1, "u-canary", replicas=0)
    )
    router = RouterSettings(kind="replicas", name="orders-canary", stable_backend="orders")
    cluster = Cluster(api, NAMESPACE)
    cluster.set_weight(router, 25)
    assert (
        cluster.deployment("orders")["spec"]["replicas"],
        cluster.deployment("orders-canary")["spec"]["replicas"],
    ) == (7, 3)
    before = cluster.set_weight(router, 0)
    assert (before.stable_replicas, before.canary_replicas, before.canary_percent) == (7, 3, 30)
    assert cluster.deployment("orders-canary")["spec"]["replicas"] == 0
    patched = [str(r.url.path).rsplit("/", 1)[-1] for r in emulator.handler if r.method == "PATCH"]
    assert patched[-2:] == ["orders", "orders-canary"]


def test_undo_restores_the_previous_revisions_pod_template_whole(api: k8s.ApiClient) -> None:
    current = deployment("orders", "orders:v3", 3, "u-orders")
    current["spec"]["template"] = pod_template("orders", "orders:v3", {"serviceAccountName": "added-in-v3"})
    apps(api).create_namespaced_deployment(NAMESPACE, current)
    for revision, image in ((1, "orders:v1"), (2, "orders:v2"), (3, "orders:v3")):
        apps(api).create_namespaced_replica_set(NAMESPACE, replica_set("orders", "u-orders", image, revision))
    stranger = replica_set("orders", "u-someone-else", "orders:evil", 2)
    stranger["metadata"]["name"] = "not-ours"
    apps(api).create_namespaced_replica_set(NAMESPACE, stranger)

    change = Cluster(api, NAMESPACE).undo("orders")
    assert (change.how, change.before, change.after) == ("revision 2", "orders:v3", "orders:v2")
    template = apps(api).read_namespaced_deployment("orders", NAMESPACE).spec.template
    assert template.spec.containers[0].image == "orders:v2"
    assert template.spec.service_account_name is None  # replaced whole, not merged
    assert "pod-template-hash" not in template.metadata.labels


def test_undo_without_an_older_revision_is_refused(api: k8s.ApiClient) -> None:
    apps(api).create_namespaced_deployment(NAMESPACE, deployment("orders", "orders:v1", 1, "u-orders"))
    apps(api).create_namespaced_replica_set(NAMESPACE, replica_set("orders", "u-orders", "orders:v1", 1))
    with pytest.raises(ServiceRejected, match="no revision before 1"):
        Cluster(api, NAMESPACE).undo("orders")


def test_setting_a_named_image_changes_only_that_container(api: k8s.ApiClient) -> None:
    current = deployment("orders", "orders:v3", 3, "u-orders")
    current["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy:1"})
    apps(api).create_namespaced_deployment(NAMESPACE, current)
    change = Cluster(api, NAMESPACE).set_image(
        "orders", "registry/orders:backend-v2026.11.14-0900", container="app"
    )
    assert (change.before, change.after) == ("orders:v3", "registry/orders:backend-v2026.11.14-0900")
    containers = apps(api).read_namespaced_deployment("orders", NAMESPACE).spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [
        ("app", "registry/orders:backend-v2026.11.14-0900"),
        ("sidecar", "envoy:1"),
    ]


def test_a_missing_object_is_named_with_its_namespace(api: k8s.ApiClient) -> None:
    apps(api).create_namespaced_deployment(NAMESPACE, deployment("other", "x:1", 1, "u-x"))
    with pytest.raises(
        KubernetesObjectMissing, match="Deployment 'orders' does not exist in namespace 'shop'"
    ):
        Cluster(api, NAMESPACE).undo("orders")


def test_a_conflict_is_read_again_and_retried(api: k8s.ApiClient, emulator: EmulatorThread) -> None:
    networking(api).create_namespaced_ingress(NAMESPACE, {"metadata": {"name": "canary"}, "spec": {}})

    def conflict_once(handler: Any) -> None:
        handler["patch"][:1] << 409 << {"kind": "Status", "code": 409, "reason": "Conflict"}

    emulator.on_loop(conflict_once)
    Cluster(api, NAMESPACE).set_weight(RouterSettings(kind="nginx-canary", name="canary"), 10)
    patches = [r for r in emulator.handler if r.method == "PATCH"]
    assert len(patches) == 2
    annotations = networking(api).read_namespaced_ingress("canary", NAMESPACE).metadata.annotations
    assert annotations["nginx.ingress.kubernetes.io/canary-weight"] == "10"


@pytest.mark.parametrize("kind", ["nginx-canary", "httproute", "replicas"])
def test_a_router_write_under_an_older_epoch_is_refused_once_a_newer_one_wrote(
    api: k8s.ApiClient, kind: str
) -> None:

    if kind == "nginx-canary":
        networking(api).create_namespaced_ingress(
            NAMESPACE, {"metadata": {"name": "fenced"}, "spec": {"rules": [{"host": "fenced.example.com"}]}}
        )
        router = RouterSettings(kind="nginx-canary", name="fenced")
    elif kind == "httproute":
        refs = [{"name": "stable", "port": 80, "weight": 100}, {"name": "canary", "port": 80, "weight": 0}]
        route = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "fenced", "namespace": NAMESPACE},
            "spec": {"rules": [{"backendRefs": refs}]},
        }
        custom(api).create_namespaced_custom_object(*GATEWAY, route)
        router = RouterSettings(
            kind="httproute", name="fenced", stable_backend="stable", canary_backend="canary"
        )
    else:
        apps(api).create_namespaced_deployment(
            NAMESPACE, deployment("fenced-stable", "o:v1", 1, "u-s", replicas=4)
        )
        apps(api).create_namespaced_deployment(NAMESPACE, deployment("fenced", "o:v2", 1, "u-c", replicas=0))
        router = RouterSettings(kind="replicas", name="fenced", stable_backend="fenced-stable")
    cluster = Cluster(api, NAMESPACE)
    check_router_fencing(cluster, router)
