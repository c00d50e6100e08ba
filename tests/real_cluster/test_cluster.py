"""The Kubernetes adapter against a real API server and deployment controller (see tests/control_plane.py)."""

import logging
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import watch

from rollout.adapters.clients import Clients
from rollout.adapters.kubernetes import CHANGE_CAUSE, REVISION, Cluster
from rollout.adapters.kubernetes_client import KubernetesConfigInvalid, api_client
from rollout.adapters.kubernetes_errors import (
    DeploymentPaused,
    KubernetesConflict,
    KubernetesForbidden,
    KubernetesTlsUnverified,
)
from rollout.errors import ServiceRejected, is_transient
from rollout.plan.model import KubernetesTarget, RouterSettings, Targets
from rollout.sandbox.cluster import roll_through
from tests.control_plane import ControlPlane
from tests.fencing import check_router_fencing

pytestmark = pytest.mark.integration

REPO = "registry.example.com/orders"
SIDECAR = {"name": "envoy", "image": "envoyproxy/envoy:v1.31"}


def apps(api: k8s.ApiClient) -> Any:
    return k8s.AppsV1Api(api)


def history(api: k8s.ApiClient, ns: str, name: str = "orders", sidecar: bool = False) -> None:
    """orders:v1 then orders:v2, each rolled out by the deployment controller."""
    roll_through(api, ns, name, "orders", [f"{REPO}:v1", f"{REPO}:v2"], [SIDECAR] if sidecar else None)


def containers(api: k8s.ApiClient, ns: str, name: str = "orders") -> list[tuple[str, str]]:
    found = apps(api).read_namespaced_deployment(name, ns).spec.template.spec.containers
    return [(c.name, c.image) for c in found]


class Interleaved(Cluster):
    """A Cluster under which another writer changes the Deployment right after some of its reads."""

    def __init__(self, api: k8s.ApiClient, ns: str, meddle: Callable[[int], None], times: int = 1) -> None:
        self.sleeps: list[float] = []
        super().__init__(api, ns, sleep=self.sleeps.append)
        self._meddle, self._times, self._reads = meddle, times, 0

    def deployment(self, name: str) -> dict[str, Any]:
        read = super().deployment(name)
        self._reads += 1
        if self._reads <= self._times:
            self._meddle(self._reads)
        return read


# --- traffic ---------------------------------------------------------------------------------


def test_nginx_canary_and_httproute_weights_are_set_and_read_back(
    control_plane: ControlPlane, admin: k8s.ApiClient, ns: str
) -> None:
    control_plane.install_gateway_api()
    networking: Any = k8s.NetworkingV1Api(admin)
    canary = {"nginx.ingress.kubernetes.io/canary": "true"}
    networking.create_namespaced_ingress(
        ns, {"metadata": {"name": "orders-canary", "annotations": canary}, "spec": {"rules": [{"host": "o"}]}}
    )
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "orders"},
        "spec": {
            "rules": [
                {
                    "backendRefs": [
                        {"name": "orders-stable", "port": 80, "weight": 100},
                        {"name": "orders-canary", "port": 80, "weight": 0},
                    ]
                }
            ]
        },
    }
    custom: Any = k8s.CustomObjectsApi(admin)
    custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", ns, "httproutes", route)
    cluster = Cluster(admin, ns)
    for router in (
        RouterSettings(kind="nginx-canary", name="orders-canary"),
        RouterSettings(
            kind="httproute", name="orders", stable_backend="orders-stable", canary_backend="orders-canary"
        ),
    ):
        assert cluster.set_weight(router, 25).canary_percent == 0
        assert cluster.set_weight(router, 75).canary_percent == 25
        assert cluster.router_state(router).canary_percent == 75
    refs = custom.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", ns, "httproutes", "orders")
    assert [b["weight"] for b in refs["spec"]["rules"][0]["backendRefs"]] == [25, 75]
    ingress = networking.read_namespaced_ingress("orders-canary", ns)
    assert ingress.metadata.annotations["nginx.ingress.kubernetes.io/canary-weight"] == "75"


def test_the_replicas_router_never_asks_for_fewer_replicas_than_the_total(
    admin: k8s.ApiClient, ns: str
) -> None:
    roll_through(admin, ns, "orders", "orders", [f"{REPO}:v1"])
    roll_through(admin, ns, "orders-canary", "orders", [f"{REPO}:v2"])
    apps(admin).patch_namespaced_deployment("orders", ns, {"spec": {"replicas": 10}})
    apps(admin).patch_namespaced_deployment("orders-canary", ns, {"spec": {"replicas": 0}})
    start = apps(admin).list_namespaced_deployment(ns).metadata.resource_version
    router = RouterSettings(kind="replicas", name="orders-canary", stable_backend="orders")
    cluster = Cluster(admin, ns)
    for percent in (10, 50, 100, 20, 0):
        cluster.set_weight(router, percent)
        assert cluster.router_state(router).canary_percent == percent
    # Watching from before the first write replays every version of both Deployments since.
    seen = [
        (event["object"].metadata.name, event["object"].spec.replicas)
        for event in watch.Watch().stream(
            apps(admin).list_namespaced_deployment, ns, resource_version=start, timeout_seconds=3
        )
    ]
    wanted = {"orders": 10, "orders-canary": 0}
    sums = []
    for name, replicas in seen:  # every write of spec.replicas, in the order the API server took them
        wanted[name] = replicas
        sums.append(wanted["orders"] + wanted["orders-canary"])
    assert len(seen) >= 10, seen
    assert min(sums) >= 10, seen


@pytest.mark.parametrize("kind", ["nginx-canary", "httproute", "replicas"])
def test_a_router_write_under_an_older_epoch_is_refused_once_a_newer_one_wrote(
    control_plane: ControlPlane, admin: k8s.ApiClient, ns: str, kind: str
) -> None:
    if kind == "nginx-canary":
        networking: Any = k8s.NetworkingV1Api(admin)
        networking.create_namespaced_ingress(
            ns, {"metadata": {"name": "fenced"}, "spec": {"rules": [{"host": "f"}]}}
        )
        router = RouterSettings(kind="nginx-canary", name="fenced")
    elif kind == "httproute":
        control_plane.install_gateway_api()
        refs = [{"name": "stable", "port": 80, "weight": 100}, {"name": "canary", "port": 80, "weight": 0}]
        route = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "fenced"},
            "spec": {"rules": [{"backendRefs": refs}]},
        }
        custom: Any = k8s.CustomObjectsApi(admin)
        custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", ns, "httproutes", route)
        router = RouterSettings(
            kind="httproute", name="fenced", stable_backend="stable", canary_backend="canary"
        )
    else:
        roll_through(admin, ns, "fenced-stable", "orders", [f"{REPO}:v1"])
        roll_through(admin, ns, "fenced", "orders", [f"{REPO}:v2"])
        apps(admin).patch_namespaced_deployment("fenced-stable", ns, {"spec": {"replicas": 4}})
        apps(admin).patch_namespaced_deployment("fenced", ns, {"spec": {"replicas": 0}})
        router = RouterSettings(kind="replicas", name="fenced", stable_backend="fenced-stable")
    cluster = Cluster(admin, ns)
    check_router_fencing(cluster, router)


# --- back to the stable release ----------------------------------------------------------------


def test_undo_gives_what_kubectl_rollout_undo_gives_on_a_history_the_controller_made(
    control_plane: ControlPlane, admin: k8s.ApiClient, ns: str
) -> None:
    for name in ("orders", "twin"):
        history(admin, ns, name, sidecar=True)
    change = Cluster(admin, ns).undo("orders", container="orders")
    control_plane.kubectl("-n", ns, "rollout", "undo", "deployment/twin")
    assert (change.before, change.after) == (f"{REPO}:v2", f"{REPO}:v1")  # the release, not the sidecar
    assert change.how == f"revision 1: set image orders={REPO}:v1"
    ours, theirs = (apps(admin).read_namespaced_deployment(n, ns) for n in ("orders", "twin"))
    assert ours.metadata.annotations[CHANGE_CAUSE] == theirs.metadata.annotations[CHANGE_CAUSE]
    assert ours.metadata.annotations[CHANGE_CAUSE] == f"set image orders={REPO}:v1"
    strip = admin.sanitize_for_serialization
    assert strip(ours.spec.template.spec) == strip(theirs.spec.template.spec)
    assert ours.spec.template.metadata.labels == {"app": "orders"}  # no pod-template-hash, as kubectl
    roll_through(admin, ns, "orders", "orders", [f"{REPO}:v1"])  # waits for the controller
    assert apps(admin).read_namespaced_deployment("orders", ns).metadata.annotations[REVISION] == "3"


def test_a_named_image_goes_on_the_configured_container(admin: k8s.ApiClient, ns: str) -> None:
    history(admin, ns, sidecar=True)
    change = Cluster(admin, ns).set_image("orders", f"{REPO}:v1", container="orders")
    assert (change.before, change.after) == (f"{REPO}:v2", f"{REPO}:v1")
    assert containers(admin, ns) == [("envoy", SIDECAR["image"]), ("orders", f"{REPO}:v1")]


def test_a_refused_image_is_not_taken_for_a_changed_list(admin: k8s.ApiClient, ns: str) -> None:
    history(admin, ns)
    cluster = Interleaved(admin, ns, lambda _: None)
    with pytest.raises(ServiceRejected, match=r"422 .*image: Required value"):
        cluster.set_image("orders", "")  # a 422 naming a field: refused at once, never retried
    assert cluster.sleeps == []


def test_a_paused_deployment_is_refused_with_kubectls_advice_and_left_alone(
    control_plane: ControlPlane, admin: k8s.ApiClient, ns: str
) -> None:
    history(admin, ns)
    control_plane.kubectl("-n", ns, "rollout", "pause", "deployment/orders")
    with pytest.raises(AssertionError, match="cannot rollback a paused deployment"):
        control_plane.kubectl("-n", ns, "rollout", "undo", "deployment/orders")
    cluster = Cluster(admin, ns)
    with pytest.raises(DeploymentPaused, match=f"kubectl rollout resume deployment/orders -n {ns}"):
        cluster.undo("orders")
    with pytest.raises(DeploymentPaused, match="is paused"):
        cluster.set_image("orders", f"{REPO}:v1")
    assert containers(admin, ns) == [("orders", f"{REPO}:v2")]


# --- conflicts -----------------------------------------------------------------------------------


def test_a_write_raced_by_another_writer_is_read_again_and_keeps_both_changes(
    admin: k8s.ApiClient, ns: str
) -> None:
    history(admin, ns)

    def label(_: int) -> None:
        apps(admin).patch_namespaced_deployment("orders", ns, {"metadata": {"labels": {"team": "payments"}}})

    cluster = Interleaved(admin, ns, label)
    cluster.set_image("orders", f"{REPO}:v1")  # answered 409 once, then written
    found = apps(admin).read_namespaced_deployment("orders", ns)
    assert found.metadata.labels["team"] == "payments"
    assert containers(admin, ns) == [("orders", f"{REPO}:v1")]
    assert cluster.sleeps


def test_a_sidecar_injected_between_read_and_write_is_read_again(admin: k8s.ApiClient, ns: str) -> None:
    history(admin, ns)

    def inject(_: int) -> None:
        sidecar = [{"op": "add", "path": "/spec/template/spec/containers/0", "value": SIDECAR}]
        apps(admin).patch_namespaced_deployment("orders", ns, sidecar)

    cluster = Interleaved(admin, ns, inject)
    change = cluster.set_image("orders", f"{REPO}:v1", container="orders")  # 422 from the test op, then 200
    assert change.before == f"{REPO}:v2"
    assert containers(admin, ns) == [("envoy", SIDECAR["image"]), ("orders", f"{REPO}:v1")]
    assert cluster.sleeps  # the controller's status writes may make it more than once


def test_a_writer_that_never_stops_gets_a_transient_error_naming_the_object_after_backoff(
    admin: k8s.ApiClient, ns: str
) -> None:
    history(admin, ns)

    def bump(read: int) -> None:
        apps(admin).patch_namespaced_deployment("orders", ns, {"metadata": {"labels": {"n": str(read)}}})

    cluster = Interleaved(admin, ns, bump, times=99)
    changed = f"Deployment {ns}/orders changed between each read"
    with pytest.raises(KubernetesConflict, match=changed) as raised:
        cluster.undo("orders")
    assert is_transient(raised.value)
    assert len(cluster.sleeps) == 4
    assert all(0 <= pause <= 0.1 * 2**i for i, pause in enumerate(cluster.sleeps, start=1)), cluster.sleeps
    assert containers(admin, ns) == [("orders", f"{REPO}:v2")]


# --- who may do what, and how the cluster is reached -----------------------------------------------


def test_a_token_without_rights_is_told_which_verb_on_which_resource(
    control_plane: ControlPlane, admin: k8s.ApiClient, ns: str
) -> None:
    history(admin, ns)
    nobody = str(control_plane.nobody_kubeconfig)
    target = KubernetesTarget(namespace=ns, deployment="orders", kubeconfig=nobody)
    with api_client(target) as nobody:
        with pytest.raises(KubernetesForbidden, match='User "nobody" cannot get resource "deployments"'):
            Cluster(nobody, ns).image("orders")
        rbac: Any = k8s.RbacAuthorizationV1Api(admin)
        rule = {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}
        rbac.create_namespaced_role(ns, {"metadata": {"name": "reader"}, "rules": [rule]})
        rbac.create_namespaced_role_binding(
            ns,
            {
                "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"kind": "User", "name": "nobody", "apiGroup": "rbac.authorization.k8s.io"}],
            },
        )
        with pytest.raises(KubernetesForbidden, match='cannot patch resource "deployments"') as raised:
            Cluster(nobody, ns).set_image("orders", f"{REPO}:v1")
    assert not is_transient(raised.value)
    assert "Role and RoleBinding" in str(raised.value)


def https_target(control_plane: ControlPlane, ns: str, **trust: Any) -> KubernetesTarget:
    return KubernetesTarget(
        namespace=ns, deployment="orders", api_url=control_plane.api_url, token="${env:K8S_TOKEN}", **trust
    )


def targets_with(kubernetes: KubernetesTarget) -> Targets:
    """Targets around ``kubernetes``; the others are never contacted by these tests."""
    return Targets.model_validate(
        {
            "mongodb": {"uri": "mongodb://127.0.0.1:9", "database": "x"},
            "prometheus": {"url": "http://127.0.0.1:9"},
            "service": {"base_url": "http://127.0.0.1:9"},
            "kubernetes": kubernetes.model_dump(exclude_none=True),
        }
    )


def test_api_url_and_token_reach_https_with_the_clusters_ca_and_an_unverified_certificate_is_permanent(
    control_plane: ControlPlane, admin: k8s.ApiClient, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(admin, ns)
    monkeypatch.setenv("K8S_TOKEN", control_plane.token("admin"))
    monkeypatch.setenv("K8S_CA", control_plane.ca_file.read_text())
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    for trust in ({"ca_file": str(control_plane.ca_file)}, {"ca_data": "${env:K8S_CA}"}):
        with Clients(targets_with(https_target(control_plane, ns, **trust))) as clients:
            assert clients.cluster is not None and clients.cluster.image("orders") == f"{REPO}:v2"
    with Clients(targets_with(https_target(control_plane, ns))) as clients:
        assert clients.cluster is not None
        for _ in range(7):  # more than the breaker's limit: a permanent error never opens it
            with pytest.raises(KubernetesTlsUnverified, match=r"set targets\.kubernetes\.ca_file") as raised:
                clients.cluster.image("orders")
    assert "(unable to get local issuer certificate)" in str(raised.value)
    assert not is_transient(raised.value)


def test_skipping_tls_verification_works_and_says_so(
    control_plane: ControlPlane,
    admin: k8s.ApiClient,
    ns: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    history(admin, ns)
    monkeypatch.setenv("K8S_TOKEN", control_plane.token("admin"))
    insecure = targets_with(https_target(control_plane, ns, insecure_skip_tls_verify=True))
    with caplog.at_level(logging.WARNING, logger="rollout.kubernetes"), Clients(insecure) as clients:
        assert clients.cluster is not None and clients.cluster.image("orders") == f"{REPO}:v2"
    assert f"TLS verification is OFF for {control_plane.api_url}" in caplog.text


def test_an_unknown_context_names_the_ones_the_kubeconfig_has(control_plane: ControlPlane) -> None:
    target = KubernetesTarget(deployment="orders", kubeconfig=str(control_plane.kubeconfig), context="prod")
    with pytest.raises(KubernetesConfigInvalid, match=r"'prod' is not a context of .*; it has real"):
        api_client(target)
