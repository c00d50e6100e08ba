"""The ``rollout`` command.

Exit codes users can script on: 0 success, 2 bad input, 3 stopped by a safety
check (rolled back, or blocked by failing data checks before any change),
1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cli import data, demo, operations, plans, rollouts, sandbox
from cli.common import EXIT_BAD_INPUT, EXIT_FAILED
from rollout.errors import InputRejected, PlanInvalid, PortInUse, RolloutError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rollout`` command: each command module adds its own."""
    parser = argparse.ArgumentParser(prog="rollout", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (plans, demo, rollouts, data, operations, sandbox):
        group.register(sub)
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
