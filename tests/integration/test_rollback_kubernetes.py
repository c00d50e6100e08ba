"""A rollout that moves a canary Ingress's weight, and a rollback that also puts the Deployment back."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from pymongo import MongoClient

from flows.rollback import run_rollback
from flows.rollout_flow import run_rollout
from rollout.adapters.flags import FlagStore
from rollout.adapters.run_state import RunStateStore
from rollout.audience.flag_state import FlagChange, FlagState
from rollout.lifecycle.statuses import Status
from rollout.sandbox.stack import SandboxInfo
from tests.kmock_cluster import NAMESPACE, EmulatorThread, deployment, replica_set
from tests.plans import PlanFiles, target_sections

pytestmark = pytest.mark.integration

RELEASE, STABLE = "backend-v2026.11.22-1000", "backend-v2026.11.14-0900"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"


@pytest.fixture()
def cluster() -> Iterator[tuple[EmulatorThread, Any, Any]]:
    with EmulatorThread() as emulator:
        configuration = k8s.Configuration()
        configuration.host = emulator.url
        with k8s.ApiClient(configuration) as api:
            apps: Any = k8s.AppsV1Api(api)
            networking: Any = k8s.NetworkingV1Api(api)
            apps.create_namespaced_deployment(
                NAMESPACE, deployment("orders", f"registry/orders:{RELEASE}", 2, "u1")
            )
            apps.create_namespaced_replica_set(
                NAMESPACE, replica_set("orders", "u1", f"registry/orders:{STABLE}", 1)
            )
            apps.create_namespaced_replica_set(
                NAMESPACE, replica_set("orders", "u1", f"registry/orders:{RELEASE}", 2)
            )
            canary = {"nginx.ingress.kubernetes.io/canary": "true", CANARY_WEIGHT: "0"}
            networking.create_namespaced_ingress(
                NAMESPACE, {"metadata": {"name": "orders-canary", "annotations": canary}, "spec": {}}
            )
            yield emulator, apps, networking


@pytest.fixture()
def main_flag(sandbox: SandboxInfo) -> Iterator[None]:
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    store = FlagStore(client.shop.feature_flags)
    off = FlagChange(enabled=False, percentage=0, users=(), stores=())
    store.set("USE_UNIFIED_ORDERS", off)
    yield
    httpx.delete(f"{sandbox.service_url}/fault")
    store.set("USE_UNIFIED_ORDERS", off)
    client.close()


@pytest.fixture()
def rollout_on_record(sandbox: SandboxInfo) -> Iterator[None]:
    """The record a rollout leaves once it has moved traffic: what a rollback started on its own acts on."""
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    client.shop.rollout_runs.delete_one({"_id": "k8s-test"})
    runs = RunStateStore(client.shop.rollout_runs)
    runs.claim("k8s-test", "run-1", RELEASE, timedelta(minutes=5), version=RELEASE, stable_before=STABLE)
    runs.remember("k8s-test", FlagState("USE_UNIFIED_ORDERS"))
    runs.remember_deployment("k8s-test", f"registry/orders:{RELEASE}")
    runs.move("k8s-test", Status.STEPPING, by="run run-1", why="ramp 30%", run_id="run-1")
    yield
    client.shop.rollout_runs.delete_one({"_id": "k8s-test"})
    client.close()


def cluster_plan(
    plan_file: PlanFiles, sandbox: SandboxInfo, url: str, deployment_name: str = "orders"
) -> str:
    """A ramp to 50 and 100 % behind an nginx canary on the emulated cluster at ``url``."""
    targets = target_sections(sandbox.targets())
    targets["kubernetes"] = {
        "namespace": NAMESPACE,
        "deployment": deployment_name,
        "api_url": url,
        "image_repository": "registry/orders",
        "router": {"kind": "nginx-canary", "name": "orders-canary"},
    }
    window = {"interval": "1s", "count": 3, "initial_delay": "2s", "gates": ["errors"]}
    return str(
        plan_file(
            "k8s-test",
            file="plan.yaml",
            release={"version": RELEASE, "stable_version": STABLE},
            targets=targets,
            backup={"collections": ["shops"]},
            gates={"errors": {"sli": "error_ratio", "max": 0.05, "rate_window": "5s"}},
            phases=[{"name": "ramp", "ramp": [50, 100], "window": window}],
        )
    )


def canary_weight(networking: Any) -> str:
    return str(
        networking.read_namespaced_ingress("orders-canary", NAMESPACE).metadata.annotations[CANARY_WEIGHT]
    )


def test_a_failing_canary_gets_weight_0_and_the_deployment_its_stable_image(
    prefect_api: None,
    sandbox: SandboxInfo,
    main_flag: None,
    cluster: Any,
    plan_file: PlanFiles,
) -> None:
    emulator, apps, networking = cluster
    httpx.put(f"{sandbox.service_url}/fault", json={"variant": "candidate", "error_rate": 1.0})
    result = run_rollout(plan_path=cluster_plan(plan_file, sandbox, emulator.url))

    assert result.status == "rolled_back"
    weights = [
        r.data["metadata"]["annotations"][CANARY_WEIGHT]
        for r in emulator.handler
        if r.method == "PATCH" and "ingresses" in str(r.url.path)
    ]
    # The step's 50; 0 by the run itself the moment it judged the canary bad; 0 again by the rollback,
    # under its own fence.
    assert weights == ["50", "0", "0"]
    assert canary_weight(networking) == "0"
    assert result.rollback is not None and result.rollback.ok, result.rollback
    steps = {s.name: s for s in result.rollback.steps}
    assert steps["router weight"].detail == "nginx-canary orders-canary: canary already at 0%, kept there"
    assert steps["deployment"].detail == (
        f"orders: registry/orders:{RELEASE} -> registry/orders:{STABLE} (stable release {STABLE})"
    )
    image = apps.read_namespaced_deployment("orders", NAMESPACE).spec.template.spec.containers[0].image
    assert image == f"registry/orders:{STABLE}"

    again = run_rollback(plan_path=cluster_plan(plan_file, sandbox, emulator.url), reason="repeat")
    assert again.outcome == "nothing-to-do" and again.steps == ()  # rolled back already
    forced = run_rollback(
        plan_path=cluster_plan(plan_file, sandbox, emulator.url), reason="repeat", force=True
    )
    assert {s.name: s.detail for s in forced.steps}[
        "deployment"
    ] == f"orders already runs registry/orders:{STABLE}"


@pytest.mark.usefixtures("rollout_on_record")
def test_a_deployment_that_does_not_exist_is_named_and_traffic_still_goes_to_stable(
    prefect_api: None,
    sandbox: SandboxInfo,
    main_flag: None,
    cluster: Any,
    plan_file: PlanFiles,
) -> None:
    emulator, _, networking = cluster
    plan = cluster_plan(plan_file, sandbox, emulator.url, deployment_name="order")
    networking.patch_namespaced_ingress(
        "orders-canary", NAMESPACE, {"metadata": {"annotations": {CANARY_WEIGHT: "30"}}}
    )
    result = run_rollback(plan_path=plan, reason="pager", severity="SEV1")

    assert not result.ok
    outcome = {s.name: (s.ok, s.detail) for s in result.steps}
    assert outcome["flag USE_UNIFIED_ORDERS"] == (True, "traffic 0")
    assert outcome["router weight"][0] is True
    # (kmock applies a PATCH even when it answers 500, so the Deployment step's retry finds it done.)
    assert "Deployment 'order' does not exist in namespace 'shop'" in outcome["deployment"][1]
    assert outcome["health check"][0] is True  # the steps after a failure still ran
    assert canary_weight(networking) == "0"
    assert result.severity == "SEV1"
    assert result.report is not None and "**FAILED**" in Path(result.report).read_text()


def ingress_patches(emulator: EmulatorThread) -> int:
    return len([r for r in emulator.handler if r.method == "PATCH" and "ingresses" in str(r.url.path)])


@pytest.mark.usefixtures("rollout_on_record")
def test_a_rollback_step_failing_once_is_retried_and_succeeds(
    prefect_api: None,
    sandbox: SandboxInfo,
    main_flag: None,
    cluster: Any,
    plan_file: PlanFiles,
) -> None:
    emulator, apps, networking = cluster
    networking.patch_namespaced_ingress(
        "orders-canary", NAMESPACE, {"metadata": {"annotations": {CANARY_WEIGHT: "30"}}}
    )
    before = ingress_patches(emulator)

    def fail_once(handler: Any) -> None:
        # kmock counts every PATCH it has seen: the set-up made one, so fail the next.
        handler["patch"][1:2] << 500 << {"kind": "Status", "code": 500, "reason": "InternalError"}

    emulator.on_loop(fail_once)
    result = run_rollback(plan_path=cluster_plan(plan_file, sandbox, emulator.url), reason="retry test")

    assert result.ok, result.steps
    assert ingress_patches(emulator) - before == 2  # the 500, then the retry
    assert canary_weight(networking) == "0"
    image = apps.read_namespaced_deployment("orders", NAMESPACE).spec.template.spec.containers[0].image
    assert image == f"registry/orders:{STABLE}"


@pytest.mark.usefixtures("rollout_on_record")
def test_a_kubernetes_api_answering_500_fails_its_steps_but_not_the_flag_and_is_reported(
    prefect_api: None,
    sandbox: SandboxInfo,
    main_flag: None,
    cluster: Any,
    plan_file: PlanFiles,
) -> None:
    emulator, _, _ = cluster

    def always_fail(handler: Any) -> None:
        handler["patch"] << 500 << {"kind": "Status", "code": 500, "reason": "InternalError"}

    emulator.on_loop(always_fail)
    result = run_rollback(plan_path=cluster_plan(plan_file, sandbox, emulator.url), reason="500 test")

    outcome = {s.name: (s.ok, s.detail) for s in result.steps}
    assert not result.ok
    assert outcome["flag USE_UNIFIED_ORDERS"] == (True, "traffic 0")
    assert outcome["router weight"][0] is False and "500" in outcome["router weight"][1]
    # (kmock applies a PATCH even when it answers 500, so the Deployment step's retry finds it done.)
    assert outcome["health check"][0] is True  # the steps after a failure still ran
    assert result.report is not None and "router weight" in Path(result.report).read_text()


def test_a_canary_weight_patched_by_hand_between_steps_holds_the_rollout_as_the_person_left_it(
    prefect_api: None,
    sandbox: SandboxInfo,
    cluster: tuple[EmulatorThread, Any, Any],
    main_flag: None,
    plan_file: PlanFiles,
) -> None:
    import threading
    import time

    emulator, _, networking = cluster
    results: list[Any] = []
    plan = cluster_plan(plan_file, sandbox, emulator.url)
    thread = threading.Thread(target=lambda: results.append(run_rollout(plan_path=plan)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while canary_weight(networking) != "50":
        assert time.monotonic() < deadline, "the first step never set the canary's weight"
        time.sleep(0.2)
    # `kubectl annotate ingress orders-canary nginx.ingress.kubernetes.io/canary-weight=80 --overwrite`
    networking.patch_namespaced_ingress(
        "orders-canary", NAMESPACE, {"metadata": {"annotations": {CANARY_WEIGHT: "80"}}}
    )
    thread.join(120)
    [result] = results
    assert result.status == "held", result.reason
    assert "nginx-canary orders-canary was changed by someone else" in result.reason
    assert "it sent 50% to the canary, it sends 80%" in result.reason
    assert canary_weight(networking) == "80"  # as the person left it


def test_an_ingress_weight_patched_with_kubectl_between_steps_holds_the_rollout_on_a_real_control_plane(
    prefect_api: None, sandbox: SandboxInfo, main_flag: None, plan_file: PlanFiles, control_plane: Any
) -> None:
    import threading
    import time

    from rollout.breaker import reset_all

    reset_all()
    ns = control_plane.namespace()
    with control_plane.admin() as api:
        apps: Any = k8s.AppsV1Api(api)
        networking: Any = k8s.NetworkingV1Api(api)
        made = deployment("orders", f"registry/orders:{RELEASE}", 2, "u1")
        made["metadata"] = {"name": "orders", "namespace": ns}  # the API server numbers and names it
        apps.create_namespaced_deployment(ns, made)
        canary = {"nginx.ingress.kubernetes.io/canary": "true", CANARY_WEIGHT: "0"}
        rule = {
            "host": "orders.test",
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "orders-canary", "port": {"number": 80}}},
                    }
                ]
            },
        }
        networking.create_namespaced_ingress(
            ns, {"metadata": {"name": "orders-canary", "annotations": canary}, "spec": {"rules": [rule]}}
        )
        targets = target_sections(sandbox.targets())
        targets["kubernetes"] = {
            "namespace": ns,
            "deployment": "orders",
            "kubeconfig": str(control_plane.kubeconfig),
            "image_repository": "registry/orders",
            "router": {"kind": "nginx-canary", "name": "orders-canary"},
        }
        window = {"interval": "1s", "count": 6, "gates": ["errors"]}
        plan = str(
            plan_file(
                "k8s-real-drift",
                release={"version": RELEASE, "stable_version": STABLE},
                targets=targets,
                gates={"errors": {"query": "vector(0)", "max": 0.5}},
                phases=[{"name": "ramp", "ramp": [50, 100], "window": window}],
            )
        )
        results: list[Any] = []
        thread = threading.Thread(target=lambda: results.append(run_rollout(plan_path=plan)), daemon=True)
        thread.start()

        def weight() -> str:
            ingress = networking.read_namespaced_ingress("orders-canary", ns)
            return str(ingress.metadata.annotations[CANARY_WEIGHT])

        deadline = time.monotonic() + 90
        while weight() != "50":
            assert time.monotonic() < deadline, "the first step never set the canary's weight"
            time.sleep(0.2)
        control_plane.kubectl(
            "-n", ns, "annotate", "ingress", "orders-canary", f"{CANARY_WEIGHT}=80", "--overwrite"
        )
        thread.join(120)
        [result] = results
        assert result.status == "held", result.reason
        assert "nginx-canary orders-canary was changed by someone else" in result.reason
        assert weight() == "80"  # as the person left it
