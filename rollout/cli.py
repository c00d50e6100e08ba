"""The ``rollout`` command.

Exit codes users can script on: 0 success, 2 bad input, 3 stopped by a safety
check (rolled back, or blocked by failing data checks before any change),
1 anything else.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from rollout.errors import InputRejected, PlanInvalid, PortInUse, RolloutError

if TYPE_CHECKING:
    from rollout.plan import Plan
    from rollout.plan.model import DeployTarget, KubernetesTarget
    from rollout.sandbox.stack import SandboxInfo

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ROLLED_BACK = 0, 1, 2, 3
FLAGS_OPTION: dict[str, Any] = {
    "choices": ["mongodb", "unleash", "flagd"],
    "default": "mongodb",
    "help": "where the flags live: MongoDB documents, a real Unleash server (on PostgreSQL), or a "
    "flagd file; the orders service reads them through the matching SDK",
}
DEMO_PLAN = Path(__file__).resolve().parent.parent / "deployments" / "plans" / "sandbox-demo.yaml"


def prefect_defaults() -> None:
    """Settings for a self-contained Prefect: no telemetry, time for first-start migrations."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate a plan: ``OK``, or one ``path: message`` line per problem."""
    from rollout.plan import load_plan

    try:
        load_plan(args.plan)
    except PlanInvalid as error:
        for problem in error.problems:
            print(problem)
        return EXIT_BAD_INPUT
    print("OK")
    return EXIT_OK


def cmd_reference(args: argparse.Namespace) -> int:
    """Print the plan reference (Markdown), generated from the plan model."""
    from rollout.plan.reference import plan_reference

    print(plan_reference(), end="")
    return EXIT_OK


def cmd_sandbox_up(args: argparse.Namespace) -> int:
    """Start the sandbox in the background and record it in the state file."""
    from rollout.sandbox import stack

    existing = stack.load(args.state_file)
    if existing is not None and any(p.alive() for p in existing.processes):
        print(
            f"a sandbox is already running (state in {args.state_file}); stop it with `rollout sandbox down`",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    options = stack.SandboxOptions(
        mongodb_port=args.mongodb_port,
        s3_port=args.s3_port,
        service_port=args.service_port,
        prometheus_port=args.prometheus_port,
        prometheus=args.prometheus,
        load_rate=args.load_rate,
        flags=args.flags,
    )
    info = stack.Sandbox(options).up()
    stack.save(info, args.state_file)
    _print_sandbox(info)
    return EXIT_OK


def cmd_sandbox_down(args: argparse.Namespace) -> int:
    """Stop the processes the recorded sandbox started, and nothing else."""
    from rollout.sandbox import stack

    info = stack.load(args.state_file)
    if info is None:
        print("no sandbox is recorded; nothing to stop")
        return EXIT_OK
    stopped = stack.stop(info)
    args.state_file.unlink(missing_ok=True)
    print(f"stopped: {', '.join(stopped) or 'nothing was still running'}")
    return EXIT_OK


def cmd_sandbox_status(args: argparse.Namespace) -> int:
    """Show the recorded sandbox and which of its processes run."""
    from rollout.sandbox import stack

    info = stack.load(args.state_file)
    if info is None:
        print("no sandbox is running")
        return EXIT_FAILED
    _print_sandbox(info)
    for record in info.processes:
        print(f"  {record.name:<11} pid {record.pid:<8} {'running' if record.alive() else 'stopped'}")
    return EXIT_OK


def cmd_sandbox_deploy(args: argparse.Namespace) -> int:
    """Make the sandbox's service run another release (the demo's deploy command)."""
    from rollout.sandbox.release import deploy

    if not Path(args.state_dir).is_dir():
        raise InputRejected(f"--state-dir: {args.state_dir} is not a sandbox directory")
    deploy(args.state_dir, args.version)
    print(f"the orders service now runs {args.version}")
    return EXIT_OK


def _print_sandbox(info: object, out: TextIO = sys.stdout) -> None:
    from rollout.sandbox.stack import SandboxInfo

    assert isinstance(info, SandboxInfo)
    print(f"MongoDB     {info.mongodb_uri} (database {info.database})", file=out)
    print(f"S3          {info.s3_endpoint} (bucket {info.bucket})", file=out)
    print(f"service     {info.service_url}", file=out)
    print(f"Prometheus  {info.prometheus_url or 'not installed (apt-get install prometheus)'}", file=out)
    if info.unleash_url:
        print(f"flags       Unleash {info.unleash_url} (project default, environment development)", file=out)
    elif info.flagd_path:
        print(f"flags       flagd file {info.flagd_path}", file=out)
    else:
        print(f"flags       MongoDB (collection feature_flags of {info.database})", file=out)
    print(f"state       {info.state_dir}", file=out)


def _exit_code(result: Any) -> int:
    if result.rollback is not None and result.rollback.outcome == "incomplete":
        return EXIT_FAILED  # a rollback that left something undone is not "rolled back as designed"
    if result.status == "dry_run":
        return EXIT_OK if all(c.passed for c in result.checks) else EXIT_ROLLED_BACK
    codes = {"promoted": EXIT_OK, "rolled_back": EXIT_ROLLED_BACK, "blocked": EXIT_ROLLED_BACK}
    return codes.get(result.status, EXIT_FAILED)


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the sandbox and run the demo plan against it; optionally break the candidate midway."""
    prefect_defaults()
    from flows.outcomes import result_of
    from flows.rollout_flow import RolloutResult, rollout_flow
    from rollout.plan import load_plan
    from rollout.report import render_result, result_json
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
        _print_sandbox(info, chatter)
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
    return _exit_code(result)


def _demo_deployer(info: SandboxInfo, plan: Plan, out: TextIO) -> DeployTarget:
    """The sandbox's service on the candidate release; the deploy command that switches it back."""
    from rollout.plan.model import DeployCommand, DeployTarget
    from rollout.sandbox.release import deploy

    deploy(info.state_dir, plan.release.version)
    print(f"service     runs {plan.release.version}; a rollback deploys the stable release", file=out)
    argv = [
        sys.executable,
        "-m",
        "rollout.cli",
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


def cmd_run(args: argparse.Namespace) -> int:
    """Run a plan (its own targets, or the running sandbox)."""
    prefect_defaults()
    from flows.outcomes import result_of
    from flows.rollout_flow import RolloutResult, rollout_flow
    from rollout.plan import load_plan
    from rollout.report import render_result, result_json

    load_plan(args.plan)
    state = rollout_flow(
        plan_path=str(args.plan),
        dry_run=args.dry_run,
        approval_timeout=args.approval_timeout or "",
        rollout_id=args.rollout_id or "",
        return_state=True,
    )
    result = result_of(state, RolloutResult)
    print(result_json(result) if args.json else render_result(result))
    return _exit_code(result)


def cmd_rollback(args: argparse.Namespace) -> int:
    """Undo the plan's last rollout from its persisted state; 0 when there was nothing to do."""
    if not (args.reason or "").strip():
        what = "--force needs --reason: say why" if args.force else "--reason is required: say why"
        raise InputRejected(f"{what} the rollout is being rolled back (it goes into the report)")
    prefect_defaults()
    from flows.outcomes import result_of
    from flows.rollback import AS_PLANNED, RollbackResult, rollback_flow
    from rollout.plan import load_plan

    load_plan(args.plan)
    collections = tuple(c.strip() for c in (args.collections or "").split(",") if c.strip())
    state = rollback_flow(
        plan_path=str(args.plan),
        reason=args.reason,
        severity=args.severity or AS_PLANNED,
        restore=args.restore or AS_PLANNED,
        collections=collections,
        force=args.force,
        return_state=True,
    )
    result = result_of(state, RollbackResult)
    if result.outcome == "nothing-to-do":
        print(f"nothing to do: {result.note}")
        return EXIT_OK
    for step in result.steps:
        print(f"{step.name}: {'ok' if step.ok else 'FAILED'} ({step.detail})")
    if result.report:
        print(f"report: {result.report}")
    return EXIT_ROLLED_BACK if result.outcome == "rolled-back" else EXIT_FAILED


def cmd_checks(args: argparse.Namespace) -> int:
    """Run the plan's data checks and print their table; exit 3 if any failed."""
    prefect_defaults()
    from flows.data import checks_flow
    from rollout.data.check_runner import checks_table
    from rollout.plan import load_plan

    load_plan(args.plan)
    results = checks_flow(plan_path=str(args.plan))
    print(checks_table(results).to_string(index=False) if results else "the plan has no data checks")
    return EXIT_OK if all(r.passed for r in results) else EXIT_ROLLED_BACK


def cmd_backup(args: argparse.Namespace) -> int:
    """Take the plan's backup; print a summary on stderr and the backup's URI on stdout."""
    prefect_defaults()
    from flows.data import backup_flow
    from rollout.plan import load_plan

    load_plan(args.plan)
    result = backup_flow(plan_path=str(args.plan))
    manifest = result.manifest
    for name, entry in manifest.collections.items():
        print(f"{name}: {entry.count} documents, sha256 {entry.sha256[:16]}", file=sys.stderr)
    print(f"archive {manifest.archive.bytes} bytes, sha256 {manifest.archive.sha256}", file=sys.stderr)
    print(result.uri)
    return EXIT_OK


def _filter(text: str | None) -> dict[str, object] | None:
    if text is None:
        return None
    from bson import json_util

    try:
        value = json_util.loads(text)
    except ValueError as error:
        raise InputRejected(f'--filter: not JSON ({error}); write e.g. \'{{"source": "web"}}\'') from error
    if not isinstance(value, dict):
        raise InputRejected('--filter: a MongoDB filter is a JSON object, e.g. \'{"source": "web"}\'')
    return value


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a backup (all, some collections, or some documents); --verify only proves it restores."""
    prefect_defaults()
    from flows.data import restore_flow, verify_flow
    from rollout.plan import load_plan

    load_plan(args.plan)
    collections = [c.strip() for c in args.collections.split(",") if c.strip()] if args.collections else None
    document_filter = _filter(args.filter)
    if document_filter is not None and not collections:
        raise InputRejected("--filter needs --collections: name the collections to filter")
    if args.verify:
        verified = verify_flow(plan_path=str(args.plan), backup_uri=args.backup)
        for check in verified.collections:
            print(
                f"{check.name}: {check.restored}/{check.archived} documents, "
                f"{'matches' if check.matches_manifest else 'DIFFERS from'} the manifest, "
                f"source {'unchanged' if check.source_unchanged else 'changed'} since the backup"
            )
        return EXIT_OK if verified.ok else EXIT_FAILED
    result = restore_flow(
        plan_path=str(args.plan),
        backup_uri=args.backup,
        collections=collections,
        into=args.into,
        document_filter=document_filter,
    )
    for c in result.collections:
        print(f"{result.database}.{c.name}: {c.restored}/{c.archived} documents {c.how}, {c.indexes} indexes")
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    """Print where the plan's last rollout stands, from its persisted record."""
    from rollout.adapters.clients import Clients
    from rollout.plan import load_plan
    from rollout.status import describe_run
    from rollout.targets import resolve_targets

    plan = load_plan(args.plan)
    with Clients(resolve_targets(plan, None)) as clients:
        record = clients.runs.get(plan.name)
        stable = clients.releases.stable(plan.name)
        flag = clients.flags.get(plan.flag)
    if args.run_id and (record is None or record.run_id != args.run_id):
        print(
            f"run {args.run_id} is not the last rollout of {plan.name}; its record is not kept",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    print(describe_run(record, plan.name, stable, flag=flag))
    return EXIT_OK


def cmd_alerts(args: argparse.Namespace) -> int:
    """Print Prometheus alert rules for the plan (YAML)."""
    import yaml

    from rollout.monitoring import alert_rules
    from rollout.plan import load_plan

    print(yaml.safe_dump(alert_rules(load_plan(args.plan)), sort_keys=False, width=1000), end="")
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Print a Grafana dashboard for the plan (JSON)."""
    import json

    from rollout.monitoring import dashboard
    from rollout.plan import load_plan

    print(json.dumps(dashboard(load_plan(args.plan)), indent=2))
    return EXIT_OK


def cmd_deployments(args: argparse.Namespace) -> int:
    """Check prefect.yaml: ``OK`` or one ``deployments[name].field: message`` line per problem."""
    from flows.deployments import check_deployments

    problems = check_deployments(args.config)
    for problem in problems:
        print(problem)
    if not problems:
        print("OK")
    return EXIT_BAD_INPUT if problems else EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    """Check prefect.yaml whole, then register every deployment on the server in PREFECT_API_URL."""
    prefect_defaults()
    from flows.deployments import register_deployments

    for name in register_deployments(args.config):
        print(f"registered {name}")
    return EXIT_OK


def cmd_exporter(args: argparse.Namespace) -> int:
    """Serve rollout progress as Prometheus metrics until interrupted."""
    import time

    from prometheus_client import CollectorRegistry, start_http_server

    from rollout.adapters.clients import Clients
    from rollout.exporter import RolloutCollector
    from rollout.plan import load_plan
    from rollout.targets import resolve_targets

    plan = load_plan(args.plan)
    with Clients(resolve_targets(plan, None)) as clients:
        registry = CollectorRegistry()
        registry.register(RolloutCollector(clients.runs.documents))
        start_http_server(args.port, addr=args.host, registry=registry)
        print(f"serving rollout metrics on http://{args.host}:{args.port}/metrics", file=sys.stderr)
        while True:
            time.sleep(3600)


def cmd_promote(args: argparse.Namespace) -> int:
    """Answer a paused rollout: approve (or, with --reject, refuse) and resume it."""
    prefect_defaults()
    from uuid import UUID

    from prefect.flow_runs import resume_flow_run

    try:
        run_id = UUID(args.run_id)
    except ValueError:
        print(f"run_id: {args.run_id!r} is not a flow run id (a UUID, shown by the paused run)")
        return EXIT_BAD_INPUT
    from flows.decision import answer

    decision: Literal["approve", "reject"] = "reject" if args.reject else "approve"
    try:
        resume_flow_run(run_id, run_input=answer(decision, args.approver, args.note, args.tick))
    except RuntimeError as error:  # the server refused the answer: a box unticked, a run not paused
        print(f"not resumed: {error}")
        return EXIT_BAD_INPUT
    print(f"{decision}d by {args.approver}; run {run_id} resumes")
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    """One reconciler pass against the Prefect server in PREFECT_API_URL (for cron): 0 when nothing is
    left for a person, 1 when some rollout needs one, 2 when the server cannot be reached."""
    prefect_defaults()
    import httpx
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    if not api:
        print(
            "PREFECT_API_URL is not set: the reconciler wakes and adopts runs of a Prefect server; "
            "set it to the server's API (e.g. http://127.0.0.1:4200/api)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        httpx.get(f"{api.rstrip('/')}/health", timeout=10).raise_for_status()
    except httpx.HTTPError as error:
        print(
            f"the Prefect server at {api} cannot be reached ({error}): nothing was reconciled",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    from flows.reconcile import reconcile_flow

    report = reconcile_flow(plans=args.plans or None)
    print(report.summary())
    for acted in report.acted:
        print(f"{acted.plan}: {acted.did} ({acted.why})")
    for acted in report.cannot_act:
        print(f"{acted.plan}: cannot act: {acted.why}")
    return EXIT_FAILED if report.cannot_act else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rollout`` command."""
    parser = argparse.ArgumentParser(prog="rollout", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check a plan")
    validate.add_argument("plan", type=Path)
    validate.set_defaults(run=cmd_validate)

    reference = sub.add_parser("plan-reference", help="print the plan reference as Markdown")
    reference.set_defaults(run=cmd_reference)

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

    run = sub.add_parser("run", help="run a plan")
    run.add_argument("plan", type=Path)
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--dry-run", action="store_true", help="check and count everything, change nothing")
    run.add_argument(
        "--rollout-id",
        help="which rollout this is (default: the release version); the same id resumes one that stopped",
    )
    run.add_argument("--approval-timeout", metavar="DURATION", help="e.g. 30m; default: the plan's")
    run.set_defaults(run=cmd_run)

    rollback = sub.add_parser("rollback", help="undo the plan's last rollout")
    rollback.add_argument("plan", type=Path)
    rollback.add_argument("--reason", help="why (required): shown in the report and the logs")
    rollback.add_argument(
        "--force",
        action="store_true",
        help="roll back a promoted (or already rolled-back) rollout too; data only with --restore",
    )
    rollback.add_argument("--severity", choices=["SEV1", "SEV2", "SEV3"], help="default: the plan's")
    rollback.add_argument("--restore", choices=["none", "selective", "full"], help="default: the plan's")
    rollback.add_argument("--collections", metavar="A,B", help="for --restore selective")
    rollback.set_defaults(run=cmd_rollback)

    checks = sub.add_parser("checks", help="run the plan's data checks")
    checks.add_argument("plan", type=Path)
    checks.set_defaults(run=cmd_checks)

    backup = sub.add_parser("backup", help="back up the plan's database to S3; prints the backup's URI")
    backup.add_argument("plan", type=Path)
    backup.set_defaults(run=cmd_backup)

    restore = sub.add_parser("restore", help="restore a backup after checking it against its manifest")
    restore.add_argument("plan", type=Path)
    restore.add_argument("--backup", required=True, metavar="URI", help="s3://bucket/prefix/backup-.../")
    restore.add_argument("--collections", metavar="A,B", help="restore only these collections")
    restore.add_argument("--filter", metavar="JSON", help="with --collections: only documents matching this")
    restore.add_argument("--into", metavar="DB", help="restore into this database instead of the original")
    restore.add_argument(
        "--verify", action="store_true", help="restore into a scratch database and compare digests only"
    )
    restore.set_defaults(run=cmd_restore)

    where = sub.add_parser("status", help="where the plan's last rollout stands")
    where.add_argument("plan", type=Path)
    where.add_argument("--run", dest="run_id", metavar="RUN_ID", help="fail unless this is the run on record")
    where.set_defaults(run=cmd_status)

    alerts = sub.add_parser("alerts", help="print Prometheus alert rules for a plan")
    alerts.add_argument("plan", type=Path)
    alerts.set_defaults(run=cmd_alerts)
    board = sub.add_parser("dashboard", help="print a Grafana dashboard for a plan")
    board.add_argument("plan", type=Path)
    board.set_defaults(run=cmd_dashboard)

    deployments = sub.add_parser("deployments", help="check prefect.yaml before registering it")
    deployments.add_argument("config", type=Path, nargs="?", default=Path("prefect.yaml"))
    deployments.set_defaults(run=cmd_deployments)

    deploy = sub.add_parser("deploy", help="check prefect.yaml, then register its deployments")
    deploy.add_argument("config", type=Path, nargs="?", default=Path("prefect.yaml"))
    deploy.set_defaults(run=cmd_deploy)

    exporter = sub.add_parser("exporter", help="serve rollout progress as Prometheus metrics")
    exporter.add_argument("plan", type=Path, help="any plan whose targets hold the run records")
    exporter.add_argument("--host", default="127.0.0.1")
    exporter.add_argument("--port", type=int, default=9464)
    exporter.set_defaults(run=cmd_exporter)

    promote = sub.add_parser("promote", help="approve a paused rollout")
    promote.add_argument("run_id")
    promote.add_argument("--approver", required=True)
    promote.add_argument("--note", default="")
    promote.add_argument("--reject", action="store_true", help="refuse instead: the rollout rolls back")
    promote.add_argument(
        "--tick",
        action="append",
        default=[],
        metavar="ITEM",
        help="a checklist item confirmed (repeat for each; all of the phase's are needed to approve)",
    )
    promote.set_defaults(run=cmd_promote)

    reconcile = sub.add_parser(
        "reconcile", help="one pass: measure parked windows, wake, adopt or hold rollouts (for cron)"
    )
    reconcile.add_argument(
        "plans",
        nargs="*",
        help="plan files or globs whose databases to reconcile (default: deployments/plans/*.yaml)",
    )
    reconcile.set_defaults(run=cmd_reconcile)

    from rollout.sandbox.stack import DEFAULT_STATE_FILE

    sandbox = sub.add_parser("sandbox", help="the local stand-ins").add_subparsers(
        dest="action", required=True
    )
    up = sandbox.add_parser("up", help="start the sandbox in the background")
    for name in ("mongodb", "s3", "service", "prometheus"):
        up.add_argument(f"--{name}-port", type=int, default=0, help="0 picks a free port")
    up.add_argument("--prometheus", choices=["auto", "required", "off"], default="auto")
    up.add_argument("--load-rate", type=float, default=40.0, help="requests a second")
    up.add_argument("--flags", **FLAGS_OPTION)
    up.set_defaults(run=cmd_sandbox_up)
    down = sandbox.add_parser("down", help="stop what `up` started")
    down.set_defaults(run=cmd_sandbox_down)
    deploy = sandbox.add_parser("deploy", help="switch the release the sandbox's service runs")
    deploy.add_argument("version", help="the release, e.g. backend-v2026.11.14-0900")
    deploy.add_argument("--state-dir", required=True, help="the sandbox's directory")
    deploy.set_defaults(run=cmd_sandbox_deploy)
    status = sandbox.add_parser("status", help="show the running sandbox")
    status.set_defaults(run=cmd_sandbox_status)
    for command in (up, down, status):
        command.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except PlanInvalid as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    except PortInUse as error:
        print(f"sandbox: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except InputRejected as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RolloutError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
