"""The flag providers against what applications read: a real Unleash server and a flagd file.

At every step of a ramp, the users the applications' own SDKs admit (Unleash's Python SDK,
OpenFeature's flagd provider) must be exactly those the provider's bucketing counts, and
every user admitted stays admitted at the next step.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider import ProviderStatus
from prefect.client.schemas.objects import StateType
from pymongo import MongoClient
from UnleashClient import UnleashClient

from rollout.adapters.fences import COLLECTION as FENCES
from rollout.adapters.fences import FenceStore
from rollout.adapters.flagd import FlagdFile
from rollout.adapters.flagd_sources import FlagdSetupInvalid
from rollout.adapters.flags import FlagProvider, FlagStore
from rollout.adapters.unleash import UnleashFlags, UnleashSetupInvalid
from rollout.audience.bucketing import bucket
from rollout.audience.flag_state import Fence, FencedOff, FlagChange, FlagConflict, FlagState
from rollout.audience.steps import Audience
from rollout.errors import RolloutError, ServiceUnavailable
from rollout.plan.model import FlagdTarget, UnleashTarget
from rollout.sandbox.processes import free_port
from rollout.sandbox.stack import SandboxInfo
from tests.plans import PlanFiles
from tests.tiers import cannot_run
from tests.unleash_server import UnleashServer, missing, unleash_server

FLAG = "USE_UNIFIED_ORDERS"
USERS = [f"user-{i:04d}" for i in range(1500)]
ALLOWED = ("dev@example.com", "qa@example.com")
PILOTS = ("shop-0007", "shop-0042")


def ramp() -> list[Audience]:
    """Internal users, then pilot stores, then the runbooks' ramp."""
    steps = [Audience(users=ALLOWED), Audience(users=ALLOWED, stores=PILOTS)]
    steps += [steps[-1].widened(percentage=p) for p in (10, 25, 50, 75, 100)]
    return steps


def expected(provider: FlagProvider, audience: Audience) -> set[str]:
    """Who the orchestrator counts as admitted: the allowlist, and the provider's bucketing."""
    return {
        u for u in [*USERS, *ALLOWED] if u in audience.users or provider.admits(FLAG, u, audience.percentage)
    }


@pytest.fixture(scope="module")
def unleash() -> Iterator[UnleashServer]:
    why = missing()
    if why is not None:
        cannot_run(why)
    with unleash_server() as server:
        yield server


def admin(server: UnleashServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": server.admin_token}, timeout=10)


def create_flag(server: UnleashServer, name: str) -> None:
    with admin(server) as http:
        answer = http.post("/api/admin/projects/default/features", json={"name": name, "type": "release"})
        assert answer.status_code in (200, 201), answer.text


@pytest.fixture()
def fences(sandbox: SandboxInfo, sandbox_mongo: MongoClient[dict[str, Any]]) -> FenceStore:
    collection = sandbox_mongo[sandbox.database][FENCES]
    collection.delete_many({})
    return FenceStore(collection, "unleash")


def unleash_flags(
    server: UnleashServer, fences: FenceStore, token: str | None = None, **where: str
) -> UnleashFlags:
    return UnleashFlags(
        server.url,
        token or server.admin_token,
        where.get("project", "default"),
        where.get("environment", "development"),
        fences,
    )


def sdk_admitted(server: UnleashServer, tmp_path: Path, name: str) -> tuple[set[str], set[str]]:
    """Users and stores Unleash's own Python SDK admits, fetched fresh from the server."""
    cache = tmp_path / f"unleash-cache-{len(list(tmp_path.glob('unleash-cache-*')))}"
    client = UnleashClient(
        url=f"{server.url}/api",
        app_name="orders",
        custom_headers={"Authorization": server.backend_token},
        disable_metrics=True,
        disable_registration=True,
        cache_directory=str(cache),
    )
    client.initialize_client()
    try:
        users = {u for u in [*USERS, *ALLOWED] if client.is_enabled(name, {"userId": u})}
        stores = {
            s for s in [*PILOTS, "shop-0001"] if client.is_enabled(name, {"properties": {"storeId": s}})
        }
    finally:
        client.destroy()
    return users, stores


PROOF = Path(__file__).resolve().parents[2] / "node" / "flag-proof.mjs"


def node_admitted(flag: str, **source: Any) -> set[str]:
    """Who a Node service admits through Unleash's Node SDK (``unleash``) or OpenFeature's flagd provider."""
    ask = {"flag": flag, "users": [*USERS, *ALLOWED], **source}
    done = subprocess.run(["node", str(PROOF), json.dumps(ask)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout)[next(iter(source))])


def node_seen(flag: str, wanted: set[str], **source: Any) -> set[str]:
    """What Node admits once the source serves the write (Unleash's client API caches for about a second)."""
    deadline = time.monotonic() + 15
    while True:
        seen = node_admitted(flag, **source)
        if seen == wanted or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def sdk_seen(
    server: UnleashServer, tmp_path: Path, name: str, wanted: tuple[set[str], set[str]]
) -> tuple[set[str], set[str]]:
    """What the SDK admits once the server's client API serves the write (it caches for about a second)."""
    deadline = time.monotonic() + 15
    while True:
        seen = sdk_admitted(server, tmp_path, name)
        if seen == wanted or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def test_unleash_admits_exactly_the_users_our_bucketing_counts_at_every_step_and_restores(
    unleash: UnleashServer, fences: FenceStore, tmp_path: Path
) -> None:
    create_flag(unleash, FLAG)
    flags = unleash_flags(unleash, fences)
    flags.check([FLAG])
    before = flags.get(FLAG)
    assert (before.enabled, before.percentage, before.users) == (False, 0, ())
    previous: set[str] = set()
    for audience in ramp():
        state = flags.set(FLAG, audience.flag_change(), expected_version=flags.get(FLAG).version)
        assert (state.enabled, state.percentage, set(state.users)) == (
            True,
            audience.percentage,
            set(audience.users),
        )
        users, stores = sdk_seen(unleash, tmp_path, FLAG, (expected(flags, audience), set(audience.stores)))
        assert users == expected(flags, audience), audience.describe()
        assert stores == set(audience.stores)
        assert previous <= users, "a user admitted at the step before was dropped"
        unleash_source = {"url": unleash.url, "token": unleash.backend_token}
        assert node_seen(FLAG, users, unleash=unleash_source) == users, "Node's Unleash SDK disagrees"
        previous = users
    assert len(previous) == len(USERS) + len(ALLOWED)

    restored = flags.set(FLAG, before_change(before))
    assert (restored.enabled, restored.percentage, restored.users, restored.stores) == (False, 0, (), ())
    with admin(unleash) as http:
        feature = http.get(f"/api/admin/projects/default/features/{FLAG}").json()
    # As it was before the rollout: off in the environment, with no strategy at all.
    development = next(e for e in feature["environments"] if e["name"] == "development")
    assert (development["enabled"], development["strategies"]) == (False, [])
    assert sdk_seen(unleash, tmp_path, FLAG, (set(), set())) == (set(), set())


def before_change(before: FlagState) -> FlagChange:
    return FlagChange(
        enabled=before.enabled, percentage=before.percentage, users=before.users, stores=before.stores
    )


def test_unleash_writes_are_fenced_and_checked_against_the_version_read(
    unleash: UnleashServer, fences: FenceStore
) -> None:
    create_flag(unleash, "FENCED_FLAG")
    flags = unleash_flags(unleash, fences)
    stale = flags.get("FENCED_FLAG").version
    flags.set("FENCED_FLAG", Audience(percentage=10).flag_change(), fence=Fence("orders", 2))
    with pytest.raises(FlagConflict):
        flags.set("FENCED_FLAG", Audience(percentage=50).flag_change(), expected_version=stale)
    with pytest.raises(FencedOff, match="epoch 2"):
        flags.set("FENCED_FLAG", Audience(percentage=75).flag_change(), fence=Fence("orders", 1))
    assert flags.get("FENCED_FLAG").percentage == 10
    assert flags.highest_fence("orders") == 2


def test_unleash_setup_problems_are_refused_before_anything_changes_naming_the_fix(
    unleash: UnleashServer, fences: FenceStore
) -> None:
    create_flag(unleash, "CHECKED_FLAG")
    with pytest.raises(UnleashSetupInvalid, match="refused the token"):
        unleash_flags(unleash, fences, token="*:*.wrong").check(["CHECKED_FLAG"])
    with pytest.raises(
        UnleashSetupInvalid, match=r"no project nowhere \(it has default\): fix targets.unleash.project"
    ):
        unleash_flags(unleash, fences, project="nowhere").check(["CHECKED_FLAG"])
    with pytest.raises(UnleashSetupInvalid, match=r"no environment staging .*development, production"):
        unleash_flags(unleash, fences, environment="staging").check(["CHECKED_FLAG"])
    with pytest.raises(UnleashSetupInvalid, match="flag MISSING_FLAG is not in Unleash"):
        unleash_flags(unleash, fences).check(["CHECKED_FLAG", "MISSING_FLAG"])
    with admin(unleash) as http:
        http.post(
            "/api/admin/projects/default/features/CHECKED_FLAG/environments/development/strategies",
            json={"name": "default", "parameters": {}},
        ).raise_for_status()
    with pytest.raises(UnleashSetupInvalid, match="strategies the rollout does not manage"):
        unleash_flags(unleash, fences).check(["CHECKED_FLAG"])
    gone = UnleashFlags(
        f"http://127.0.0.1:{free_port()}", unleash.admin_token, "default", "development", fences
    )
    with pytest.raises(ServiceUnavailable, match="Unleash unavailable"):
        gone.check(["CHECKED_FLAG"])


# --- flagd ------------------------------------------------------------------------------------


def flagd_file(tmp_path: Path, *names: str) -> Path:
    path = tmp_path / "flags.json"
    off = {"state": "DISABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    path.write_text(json.dumps({"flags": {name: off for name in names}}))
    return path


def openfeature_admitted(path: Path, name: str, step: int) -> tuple[set[str], set[str]]:
    """Users and stores OpenFeature's flagd provider admits, reading the file in process."""
    domain = f"step-{step}"
    provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path))
    api.set_provider(provider, domain)
    client = api.get_client(domain)
    # The file is loaded on the provider's own thread: evaluating before it is ready answers errors.
    deadline = time.monotonic() + 10
    while client.get_provider_status() != ProviderStatus.READY:
        assert time.monotonic() < deadline, f"flagd provider not ready: {client.get_provider_status()}"
        time.sleep(0.02)
    try:
        users = {
            u
            for u in [*USERS, *ALLOWED]
            if client.get_boolean_value(name, False, EvaluationContext(targeting_key=u))
        }
        stores = {
            s
            for s in [*PILOTS, "shop-0001"]
            if client.get_boolean_value(name, False, EvaluationContext(attributes={"storeId": s}))
        }
    finally:
        provider.shutdown()
    return users, stores


def test_flagd_file_read_by_openfeature_admits_exactly_our_count_sticky_and_growing(tmp_path: Path) -> None:
    path = flagd_file(tmp_path, FLAG, "ENABLE_DUAL_WRITE")
    flags = FlagdFile(path)
    flags.check([FLAG, "ENABLE_DUAL_WRITE"])
    previous: set[str] = set()
    for step, audience in enumerate(ramp()):
        state = flags.set(FLAG, audience.flag_change(), expected_version=flags.get(FLAG).version)
        assert state.version == step + 1
        users, stores = openfeature_admitted(path, FLAG, step)
        assert users == expected(flags, audience), audience.describe()
        assert stores == set(audience.stores)
        assert previous <= users
        assert node_admitted(FLAG, flagd=str(path)) == users, "Node's flagd provider disagrees"
        previous = users
    assert len(previous) == len(USERS) + len(ALLOWED)
    counts = [len(expected(flags, a)) - len(ALLOWED) for a in ramp()[2:]]
    assert counts == sorted(counts) and 0.05 < counts[0] / len(USERS) < 0.15, counts
    # The file stays a flagd definition that other flags keep their place in.
    assert json.loads(path.read_text())["flags"]["ENABLE_DUAL_WRITE"]["state"] == "DISABLED"


def test_flagd_traffic_off_admits_no_one_and_fences_refuse_an_older_epoch(tmp_path: Path) -> None:
    path = flagd_file(tmp_path, FLAG)
    flags = FlagdFile(path)
    flags.set(FLAG, Audience(users=ALLOWED, percentage=50).flag_change(), fence=Fence("orders", 3))
    with pytest.raises(FencedOff, match="epoch 3"):
        flags.set(FLAG, Audience(percentage=75).flag_change(), fence=Fence("orders", 2))
    with pytest.raises(FlagConflict):
        flags.set(FLAG, Audience(percentage=75).flag_change(), expected_version=0)
    closed = flags.set(FLAG, FlagChange(enabled=False, percentage=0), fence=Fence("orders", 4))
    assert (closed.enabled, closed.users) == (False, ALLOWED)
    assert openfeature_admitted(path, FLAG, 99) == (set(), set())
    assert flags.highest_fence("orders") == 4


def test_flagd_setup_problems_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FlagdSetupInvalid, match=r"does not exist: fix targets\.flagd\.path"):
        FlagdFile(tmp_path / "nope.json").check([FLAG])
    with pytest.raises(FlagdSetupInvalid, match=f"flag {FLAG} is not in flagd file"):
        FlagdFile(flagd_file(tmp_path, "OTHER")).check([FLAG])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(FlagdSetupInvalid, match="is not JSON"):
        FlagdFile(broken).check([FLAG])
    custom = tmp_path / "custom.json"
    custom.write_text(json.dumps({"flags": {FLAG: {"state": "ENABLED", "targeting": {"==": [1, 1]}}}}))
    with pytest.raises(FlagdSetupInvalid, match="targeting the rollout does not manage"):
        FlagdFile(custom).check([FLAG])


def test_a_rollout_whose_companion_flag_is_missing_in_unleash_ends_invalid_input_before_any_change(
    prefect_api: None,
    sandbox: SandboxInfo,
    unleash: UnleashServer,
    plan_file: PlanFiles,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.rollout_flow import rollout_flow
    from tests.integration.test_rollout_flow import flow_plan

    monkeypatch.setenv("UNLEASH_ADMIN_TOKEN", unleash.admin_token)
    unleash_target = {
        "url": unleash.url,
        "api_token": "${env:UNLEASH_ADMIN_TOKEN}",
        "environment": "development",
    }
    targets = sandbox.targets().model_copy(
        update={"unleash": UnleashTarget(**unleash_target, refresh_interval="2s")}
    )
    with admin(unleash) as http:
        # The main flag is there (made here if no test before made it); its companion is not.
        http.post("/api/admin/projects/default/features", json={"name": FLAG, "type": "release"})
        events_before = http.get("/api/admin/search/events?limit=1").json()["total"]
    state = rollout_flow(plan_path=flow_plan(plan_file), targets=targets, return_state=True)
    assert (state.type, state.name) == (StateType.FAILED, "InvalidInput")
    assert "flag ENABLE_DUAL_WRITE is not in Unleash project default, environment development" in str(
        state.message
    )
    with admin(unleash) as http:
        assert http.get("/api/admin/search/events?limit=1").json()["total"] == events_before


def test_unleash_lost_mid_ramp_is_retried_then_stops_with_the_last_verified_audience(
    prefect_api: None,
    sandbox: SandboxInfo,
    flags: FlagStore,
    unleash: UnleashServer,
    plan_file: PlanFiles,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.rollout_flow import run_rollout
    from tests.integration.test_observe_faults import FLAG as FAULT_FLAG
    from tests.integration.test_observe_faults import cut_after_first_step, fault_plan
    from tests.tcp_proxy import CuttableProxy

    create_flag(unleash, FAULT_FLAG)
    # The sandbox's service reads its own flag: give the gates candidate traffic to judge.
    flags.set(sandbox.flag, FlagChange(enabled=True, percentage=50))
    proxy = CuttableProxy(int(unleash.url.rsplit(":", 1)[1]))
    monkeypatch.setenv("UNLEASH_ADMIN_TOKEN", unleash.admin_token)
    through_proxy = {"url": f"http://127.0.0.1:{proxy.port}", "api_token": "${env:UNLEASH_ADMIN_TOKEN}"}
    targets = sandbox.targets().model_copy(
        update={"unleash": UnleashTarget(**through_proxy, environment="development", refresh_interval="2s")}
    )
    gates = {"errors": {"sli": "error_ratio", "max": 0.05, "rate_window": "10s"}}
    plan = fault_plan(plan_file, "fault-unleash", gates)
    watcher = cut_after_first_step(proxy, sandbox, "fault-unleash")
    with pytest.raises(ServiceUnavailable, match="Unleash unavailable"):
        run_rollout(plan_path=plan, targets=targets)
    watcher.join(timeout=5)
    # Read past the proxy: the next step's write never landed; the verified allowlist stands.
    flag = unleash_flags(unleash, FenceStore(sandbox_fences(sandbox), "unleash")).get(FAULT_FLAG)
    assert (flag.enabled, flag.percentage, flag.users) == (True, 0, ("dev@example.com",))
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    record = client[sandbox.database]["rollout_runs"].find_one({"_id": "fault-unleash"})
    client.close()
    assert record is not None and [s["key"] for s in record["steps"]] == ["internal/0"]
    assert record["steps"][0]["admitted"]["users"] == ["dev@example.com"], record["steps"][0]


def sandbox_fences(sandbox: SandboxInfo) -> Any:
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    return client[sandbox.database][FENCES]


def test_a_rollout_in_a_flagd_file_whose_window_fails_is_rolled_back_there(
    prefect_api: None, sandbox: SandboxInfo, flags: FlagStore, tmp_path: Path, plan_file: PlanFiles
) -> None:
    from flows.rollout_flow import run_rollout
    from tests.integration.test_observe_faults import FLAG as FAULT_FLAG
    from tests.integration.test_observe_faults import fault_plan

    path = flagd_file(tmp_path, FAULT_FLAG)
    targets = sandbox.targets().model_copy(
        update={"flagd": FlagdTarget(path=str(path), refresh_interval="1s")}
    )
    # The sandbox's service reads its own flag: candidate traffic, every request of it failing,
    # short of the rollback's smoke-test user (the rollback cannot close the service's flag).
    share = min(50, bucket(sandbox.flag, "smoke-test") - 1)
    assert share >= 5
    flags.set(sandbox.flag, FlagChange(enabled=True, percentage=share))
    httpx.put(
        f"{sandbox.service_url}/fault", json={"variant": "candidate", "error_rate": 1.0}
    ).raise_for_status()
    try:
        gates = {"errors": {"sli": "error_ratio", "max": 0.05, "rate_window": "10s"}}
        result = run_rollout(plan_path=fault_plan(plan_file, "flagd-rollback", gates), targets=targets)
    finally:
        httpx.delete(f"{sandbox.service_url}/fault").raise_for_status()
    assert result.status == "rolled_back", result.reason
    assert result.rollback is not None and result.rollback.ok
    assert [(s.phase, s.outcome) for s in result.steps] == [("internal", "failed")]
    # The allowlisted step was written to the file, closed by the run the moment it was judged bad,
    # then written again by the rollback under its own fence: no one admitted.
    state = FlagdFile(path).get(FAULT_FLAG)
    assert (state.enabled, state.percentage, state.version) == (False, 0, 3)
    assert openfeature_admitted(path, FAULT_FLAG, 500) == (set(), set())


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ("untitled", "untitled flexibleRollout (at 100%"),
        ("kill-switch", "was turned off (a kill switch) by someone else"),
        ("not-in", "rollout: users (at 100%, userId NOT_IN"),
        ("wider", "it is on: 1 users, 0 stores, 60%"),
        ("disabled", "rollout: percentage (at 0%, groupId HAND_EDIT_DISABLED, stickiness userId, disabled)"),
        ("group-id", "rollout: percentage (at 0%, groupId someone-else"),
    ],
)
def test_a_hand_edit_in_unleash_between_two_steps_holds_the_rollout_as_the_person_left_it(
    prefect_api: None,
    sandbox: SandboxInfo,
    unleash: UnleashServer,
    plan_file: PlanFiles,
    monkeypatch: pytest.MonkeyPatch,
    edit: str,
    said: str,
) -> None:
    import threading
    import time

    from flows.rollout_flow import run_rollout

    name = f"HAND_EDIT_{edit.upper().replace('-', '_')}"
    create_flag(unleash, name)
    monkeypatch.setenv("UNLEASH_ADMIN_TOKEN", unleash.admin_token)
    target = {"url": unleash.url, "api_token": "${env:UNLEASH_ADMIN_TOKEN}", "environment": "development"}
    targets = sandbox.targets().model_copy(update={"unleash": UnleashTarget(**target, refresh_interval="1s")})
    window = {"interval": "1s", "count": 8, "gates": ["errors"]}
    first = {"name": "internal", "allowlist": {"users": ["alice"]}, "window": window}
    plan = plan_file(
        f"hand-edit-{edit}",
        flag=name,
        targets=None,
        gates={"errors": {"query": "vector(0)", "max": 0.5}},
        phases=[first, {"name": "ramp", "ramp": [25, 100], "window": window}],
    )
    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(run_rollout(plan_path=str(plan), targets=targets)), daemon=True
    )
    thread.start()
    flags = unleash_flags(unleash, FenceStore(sandbox_fences(sandbox), "unleash"))
    deadline = time.monotonic() + 60
    while flags.get(name).users != ("alice",):
        assert time.monotonic() < deadline, "the first step was not written"
        time.sleep(0.2)
    env = f"/api/admin/projects/default/features/{name}/environments/development"
    with admin(unleash) as http:
        strategies = http.get(f"{env}/strategies").json()
        ours = {s["title"]: s for s in strategies}
        if edit == "untitled":
            body = {
                "name": "flexibleRollout",
                "parameters": {"rollout": "100", "stickiness": "default", "groupId": name},
            }
            http.post(f"{env}/strategies", json=body).raise_for_status()
        elif edit == "kill-switch":
            http.post(f"{env}/off").raise_for_status()
        elif edit == "not-in":
            users = ours["rollout: users"]
            users["constraints"][0]["operator"] = "NOT_IN"
            http.put(f"{env}/strategies/{users['id']}", json=users).raise_for_status()
        elif edit == "disabled":
            percentage = ours["rollout: percentage"]
            http.put(
                f"{env}/strategies/{percentage['id']}", json={**percentage, "disabled": True}
            ).raise_for_status()
        elif edit == "group-id":
            percentage = ours["rollout: percentage"]
            percentage["parameters"]["groupId"] = "someone-else"
            http.put(f"{env}/strategies/{percentage['id']}", json=percentage).raise_for_status()
        else:
            percentage = ours["rollout: percentage"]
            percentage["parameters"]["rollout"] = "60"
            http.put(f"{env}/strategies/{percentage['id']}", json=percentage).raise_for_status()
        left = http.get(f"{env}/strategies").json()
        events = http.get(f"/api/admin/search/events?feature=IS:{name}&limit=1").json()["total"]
    thread.join(120)
    [result] = results
    assert result.status == "held", result.reason
    assert said in result.reason, result.reason
    assert " UTC by " in result.reason  # who and when, from Unleash's event log
    with admin(unleash) as http:
        # Nothing written after the person's edit: their strategies as they left them, no new event.
        assert http.get(f"{env}/strategies").json() == left
        assert http.get(f"/api/admin/search/events?feature=IS:{name}&limit=1").json()["total"] == events


def test_a_widening_refused_part_way_by_unleash_leaves_the_previous_audience_not_a_mix(
    sandbox: SandboxInfo, unleash: UnleashServer, fences: FenceStore
) -> None:
    name = "PART_WAY"
    create_flag(unleash, name)
    flags = unleash_flags(unleash, fences)
    before = flags.set(name, FlagChange(enabled=True, percentage=5, stores=("s1", "s2")))
    # The percentage goes first and lands; then Unleash refuses the stores (a value over its limit).
    too_long = "s" * 101
    with pytest.raises(RolloutError):
        flags.set(name, FlagChange(enabled=True, percentage=10, stores=("s1", "s2", too_long)))
    after = flags.get(name)
    assert (after.enabled, after.percentage, after.stores) == (True, 5, ("s1", "s2")), after
    assert after.foreign == () and before.stores == after.stores


def test_an_edit_in_another_unleash_environment_is_no_change_to_this_rollouts_flag(
    prefect_api: None,
    sandbox: SandboxInfo,
    unleash: UnleashServer,
    plan_file: PlanFiles,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    import time

    from flows.rollout_flow import run_rollout

    name = "OTHER_ENVIRONMENT"
    create_flag(unleash, name)
    monkeypatch.setenv("UNLEASH_ADMIN_TOKEN", unleash.admin_token)
    target = {"url": unleash.url, "api_token": "${env:UNLEASH_ADMIN_TOKEN}", "environment": "development"}
    targets = sandbox.targets().model_copy(update={"unleash": UnleashTarget(**target, refresh_interval="1s")})
    window = {"interval": "1s", "count": 6, "gates": ["errors"]}
    plan = plan_file(
        "other-environment",
        flag=name,
        targets=None,
        gates={"errors": {"query": "vector(0)", "max": 0.5}},
        phases=[
            {"name": "internal", "allowlist": {"users": ["alice"]}, "window": window},
            {"name": "ramp", "ramp": [100], "window": window},
        ],
    )
    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(run_rollout(plan_path=str(plan), targets=targets)), daemon=True
    )
    thread.start()
    flags = unleash_flags(unleash, FenceStore(sandbox_fences(sandbox), "unleash"))
    deadline = time.monotonic() + 60
    while flags.get(name).users != ("alice",):
        assert time.monotonic() < deadline, "the first step was not written"
        time.sleep(0.2)
    production = f"/api/admin/projects/default/features/{name}/environments/production/strategies"
    body = {
        "name": "flexibleRollout",
        "parameters": {"rollout": "30", "stickiness": "default", "groupId": name},
    }
    with admin(unleash) as http:
        http.post(production, json=body).raise_for_status()  # someone's edit, in production only
    thread.join(120)
    [result] = results
    assert result.status == "promoted", result.reason
    assert flags.get(name).percentage == 100
