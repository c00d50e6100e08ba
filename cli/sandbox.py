"""``rollout sandbox``: the local stand-ins, started in the background and stopped again."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    FLAGS_OPTION,
    Subcommands,
)
from rollout.errors import InputRejected

if TYPE_CHECKING:
    pass


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
    print_sandbox(info)
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
    print_sandbox(info)
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


def print_sandbox(info: object, out: TextIO = sys.stdout) -> None:
    """Where the sandbox's services answer, and where its flags live."""
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


def register(sub: Subcommands) -> None:
    """Add this module's subcommands."""
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
