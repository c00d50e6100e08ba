"""Commands about plans themselves: validate one, print the reference, alerts and a dashboard for one."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    Subcommands,
)
from rollout.errors import PlanInvalid

if TYPE_CHECKING:
    pass


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


def cmd_alerts(args: argparse.Namespace) -> int:
    """Print Prometheus alert rules for the plan (YAML)."""
    import yaml

    from rollout.plan import load_plan
    from rollout.reporting.monitoring import alert_rules

    print(yaml.safe_dump(alert_rules(load_plan(args.plan)), sort_keys=False, width=1000), end="")
    return EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Print a Grafana dashboard for the plan (JSON)."""
    import json

    from rollout.plan import load_plan
    from rollout.reporting.monitoring import dashboard

    print(json.dumps(dashboard(load_plan(args.plan)), indent=2))
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add this module's subcommands."""
    validate = sub.add_parser("validate", help="check a plan")
    validate.add_argument("plan", type=Path)
    validate.set_defaults(run=cmd_validate)

    reference = sub.add_parser("plan-reference", help="print the plan reference as Markdown")
    reference.set_defaults(run=cmd_reference)

    alerts = sub.add_parser("alerts", help="print Prometheus alert rules for a plan")
    alerts.add_argument("plan", type=Path)
    alerts.set_defaults(run=cmd_alerts)
    board = sub.add_parser("dashboard", help="print a Grafana dashboard for a plan")
    board.add_argument("plan", type=Path)
    board.set_defaults(run=cmd_dashboard)
