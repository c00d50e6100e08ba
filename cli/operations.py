"""Prefect and monitoring operations: check and register the deployments, serve the exporter."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    Subcommands,
    prefect_defaults,
)

if TYPE_CHECKING:
    pass


def cmd_deployments(args: argparse.Namespace) -> int:
    """Check prefect.yaml: ``OK`` or one ``deployments[name].field: message`` line per problem."""
    from flows.prefect_deployments import check_deployments

    problems = check_deployments(args.config)
    for problem in problems:
        print(problem)
    if not problems:
        print("OK")
    return EXIT_BAD_INPUT if problems else EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    """Check prefect.yaml whole, then register every deployment on the server in PREFECT_API_URL."""
    prefect_defaults()
    from flows.prefect_deployments import register_deployments

    for name in register_deployments(args.config):
        print(f"registered {name}")
    return EXIT_OK


def cmd_exporter(args: argparse.Namespace) -> int:
    """Serve rollout progress as Prometheus metrics until interrupted."""
    import time

    from prometheus_client import CollectorRegistry, start_http_server

    from rollout.adapters.clients import Clients
    from rollout.plan import load_plan
    from rollout.reporting.exporter import RolloutCollector
    from rollout.targets import resolve_targets

    plan = load_plan(args.plan)
    with Clients(resolve_targets(plan, None)) as clients:
        registry = CollectorRegistry()
        registry.register(RolloutCollector(clients.runs.documents))
        start_http_server(args.port, addr=args.host, registry=registry)
        print(f"serving rollout metrics on http://{args.host}:{args.port}/metrics", file=sys.stderr)
        while True:
            time.sleep(3600)


def register(sub: Subcommands) -> None:
    """Add this module's subcommands."""
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
