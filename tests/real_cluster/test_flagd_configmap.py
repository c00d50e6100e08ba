"""flagd definitions in a ConfigMap on a real API server: read by OpenFeature, written safely."""

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from rollout.adapters.flagd import FlagdConfigMap, FlagdFlags, flagd_admits
from rollout.adapters.flagd_sources import ConfigMapSource, FlagdSetupInvalid
from rollout.adapters.kubernetes import Cluster
from rollout.audience.flag_state import Fence, FencedOff, FlagChange
from rollout.audience.steps import Audience
from tests.integration.test_flag_providers import ALLOWED, USERS, openfeature_admitted

pytestmark = pytest.mark.integration

FLAG = "USE_UNIFIED_ORDERS"
OFF = {"state": "DISABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}


def make_config_map(api: k8s.ApiClient, ns: str, flags: dict[str, Any]) -> None:
    body = {"metadata": {"name": "flags"}, "data": {"flags.json": json.dumps({"flags": flags})}}
    k8s.CoreV1Api(api).create_namespaced_config_map(ns, body)


def mounted(api: k8s.ApiClient, ns: str, tmp_path: Path) -> Path:
    """What a pod mounting the ConfigMap reads: its key's text as a file."""
    text = k8s.CoreV1Api(api).read_namespaced_config_map("flags", ns).data["flags.json"]
    path = tmp_path / "mounted-flags.json"
    path.write_text(text)
    return path


def test_a_ramp_in_a_config_map_is_read_by_openfeature_exactly_as_counted(
    admin: k8s.ApiClient, ns: str, tmp_path: Path
) -> None:
    make_config_map(admin, ns, {FLAG: OFF, "ENABLE_DUAL_WRITE": OFF})
    flags = FlagdConfigMap(Cluster(admin, ns), "flags", "flags.json")
    flags.check([FLAG, "ENABLE_DUAL_WRITE"])
    users = [*USERS, *ALLOWED]  # whom openfeature_admitted asks about
    previous: set[str] = set()
    for step, percentage in enumerate((10, 25, 50)):
        state = flags.set(FLAG, Audience(percentage=percentage).flag_change(), expected_version=step)
        assert (state.enabled, state.percentage, state.version) == (True, percentage, step + 1)
        admitted, _ = openfeature_admitted(mounted(admin, ns, tmp_path), FLAG, 1000 + step)
        assert admitted == {u for u in users if flagd_admits(FLAG, u, percentage)}
        assert previous <= admitted
        previous = admitted
    # A flag the plan does not name keeps its definition.
    assert json.loads(mounted(admin, ns, tmp_path).read_text())["flags"]["ENABLE_DUAL_WRITE"] == OFF


def test_a_concurrent_change_to_the_config_map_is_read_again_and_kept(admin: k8s.ApiClient, ns: str) -> None:
    make_config_map(admin, ns, {FLAG: OFF})
    core = k8s.CoreV1Api(admin)
    meddled = threading.Event()

    class Meddled(ConfigMapSource):
        def update(self, change: Callable[[str | None], str]) -> None:
            def meddling(text: str | None) -> str:
                # Another writer changes the ConfigMap between our read and our write, once.
                if not meddled.is_set():
                    meddled.set()
                    found = core.read_namespaced_config_map("flags", ns)
                    found.metadata.labels = {"touched": "yes"}
                    core.replace_namespaced_config_map("flags", ns, found)
                return change(text)

            super().update(meddling)

    source = Meddled(Cluster(admin, ns, sleep=lambda _: None), "flags", "flags.json")
    state = FlagdFlags(source).set(FLAG, Audience(percentage=25).flag_change())
    assert meddled.is_set() and state.percentage == 25
    assert core.read_namespaced_config_map("flags", ns).metadata.labels == {"touched": "yes"}


def test_config_map_fences_and_missing_definitions_are_refused_naming_the_fix(
    admin: k8s.ApiClient, ns: str
) -> None:
    with pytest.raises(FlagdSetupInvalid, match=f"ConfigMap flags does not exist in namespace {ns}"):
        FlagdConfigMap(Cluster(admin, ns), "flags", "flags.json").check([FLAG])
    make_config_map(admin, ns, {FLAG: OFF})
    with pytest.raises(FlagdSetupInvalid, match=r"holds no definitions"):
        FlagdConfigMap(Cluster(admin, ns), "flags", "other.json").check([FLAG])
    flags = FlagdConfigMap(Cluster(admin, ns), "flags", "flags.json")
    flags.set(FLAG, Audience(percentage=50).flag_change(), fence=Fence("orders", 3))
    with pytest.raises(FencedOff, match="epoch 3"):
        flags.set(FLAG, FlagChange(percentage=75), fence=Fence("orders", 2))
    assert (flags.get(FLAG).percentage, flags.highest_fence("orders")) == (50, 3)
