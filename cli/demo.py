"""``rollout demo``: the sandbox and the demo plan, optionally broken midway, optionally on a cluster."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cli.common import (
    DEMO_PLAN,
    FLAGS_OPTION,
    Subcommands,
    exit_code,
    prefect_defaults,
)
from cli.sandbox import print_sandbox
from rollout.errors import InputRejected

if TYPE_CHECKING:
    from rollout.plan import Plan
    from rollout.plan.model import DeployTarget, KubernetesTarget
    from rollout.sandbox.stack import SandboxInfo


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the sandbox and run the demo plan against it; optionally break the candidate midway."""
    prefect_defaults()
    from flows.outcomes import result_of
    from flows.rollout_flow import rollout_flow
    from flows.rollout_result import RolloutResult
    from rollout.plan import load_plan
    from rollout.reporting.result_text import render_result, result_json
    from rollout.sandbox.faults import FaultAtPercentage
    from rollout.sandbox.stack import Sandbox, SandboxOptions

    plan_path = str(args.plan)
    plan = load_plan(plan_path)
    # With --json, stdout carries the JSON alone.
    chatter = sys.stderr if args.json else sys.stdout
    print(
        f"starting the sandbox (MongoDB, S3, Prometheus, the orders service, load; flags in {args.flags}) "
        f"for {plan_path}",
        file=chatter,
    )
    cluster = _demo_cluster(args, plan, chatter) if args.kubernetes else None
    with Sandbox(SandboxOptions(prometheus=args.prometheus, flags=args.flags)) as info:
        print_sandbox(info, chatter)
        targets = info.targets().model_copy(update={"deploy": _demo_deployer(info, plan, chatter)})
        if cluster is not None:
            targets = targets.model_copy(update={"kubernetes": cluster})
        watcher = FaultAtPercentage(info, args.fault_at) if args.fault_at is not None else None
        if watcher is not None:
            print(f"the candidate will start failing once {args.fault_at:g}% of users get it", file=chatter)
            watcher.start()
        try:
            state = rollout_flow(plan_path=plan_path, targets=targets, return_state=True)
            result = result_of(state, RolloutResult)
        finally:
            if watcher is not None:
                watcher.stop()
    print(result_json(result) if args.json else render_result(result))
    if cluster is not None:
        _print_cluster(cluster, chatter)
    return exit_code(result)


def _demo_deployer(info: SandboxInfo, plan: Plan, out: TextIO) -> DeployTarget:
    """The sandbox's service on the candidate release; the deploy command that switches it back."""
    from rollout.plan.model import DeployCommand, DeployTarget
    from rollout.sandbox.release import deploy

    deploy(info.state_dir, plan.release.version)
    print(f"service     runs {plan.release.version}; a rollback deploys the stable release", file=out)
    argv = [
        sys.executable,
        "-m",
        "cli",
        "sandbox",
        "deploy",
        "{version}",
        "--state-dir",
        info.state_dir,
    ]
    return DeployTarget(
        command=DeployCommand(argv=argv), version_field="version", health_wait=timedelta(seconds=20)
    )


def _demo_cluster(args: argparse.Namespace, plan: Plan, out: TextIO) -> KubernetesTarget:
    """The demo's workload put in the cluster of ``--kubernetes``; the target pointing at it."""
    from rollout.adapters.kubernetes_client import api_client
    from rollout.sandbox.cluster import demo_target, prepare_demo

    target = demo_target(str(args.kubernetes), args.namespace, args.context)
    stable = plan.release.stable_version
    if not stable:
        raise InputRejected(f"--kubernetes: plan {plan.name} names no release.stable_version to go back to")
    with api_client(target) as api:
        prepare_demo(api, target.namespace, stable, plan.release.version)
    assert target.router is not None
    print(
        f"Kubernetes  namespace {target.namespace}: Deployment {target.deployment} rolled from {stable} to "
        f"{plan.release.version}, canary Ingress {target.router.name} at 0%",
        file=out,
    )
    return target


def _print_cluster(target: KubernetesTarget, out: TextIO) -> None:
    """Where the demo left the cluster: the canary's weight and the Deployment's image."""
    from rollout.adapters.kubernetes import Cluster
    from rollout.adapters.kubernetes_client import api_client

    assert target.router is not None
    with api_client(target) as api:
        cluster = Cluster(api, target.namespace)
        weight = cluster.router_state(target.router).canary_percent
        image = cluster.image(target.deployment, target.container)
    print(
        f"Kubernetes  canary Ingress {target.router.name} at {weight}%, Deployment {target.deployment} "
        f"runs {image}",
        file=out,
    )


def register(sub: Subcommands) -> None:
    """Add this module's subcommands."""
    demo = sub.add_parser("demo", help="start the sandbox and run the demo rollout")
    demo.add_argument("--plan", type=Path, default=DEMO_PLAN)
    demo.add_argument("--prometheus", choices=["auto", "required", "off"], default="auto")
    demo.add_argument(
        "--fault-at", type=float, metavar="PCT", help="make the candidate fail once PCT%% of users get it"
    )
    demo.add_argument("--json", action="store_true", help="print the result as JSON")
    demo.add_argument("--flags", **FLAGS_OPTION)
    demo.add_argument(
        "--kubernetes",
        type=Path,
        metavar="KUBECONFIG",
        help="also move a canary Ingress and roll back a Deployment in this cluster (namespace --namespace)",
    )
    demo.add_argument("--context", help="kubeconfig context for --kubernetes")
    demo.add_argument(
        "--namespace", default="rollout-demo", help="namespace for --kubernetes (made if missing)"
    )
    demo.set_defaults(run=cmd_demo)
