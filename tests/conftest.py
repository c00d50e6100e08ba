from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.control_plane import ControlPlane, missing, started
from tests.plans import PlanFiles
from tests.tiers import cannot_run


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real Kubernetes control plane for the session; without one, a skip saying why (in CI, a failure)."""
    why = missing()
    if why is not None:
        cannot_run(why)
    yield from started(tmp_path_factory.mktemp("k8s"))


@pytest.fixture()
def plan_file(tmp_path: Path) -> PlanFiles:
    """Writes plans into the test's folder (no targets: integration tests get the sandbox's)."""
    return PlanFiles(tmp_path)


OPERATOR_MODULES = frozenset(
    f"tests/integration/{name}.py"
    for name in (
        "test_durability",
        "test_emergency_api",
        "test_make_deploy",
        "test_prefect_ui",
        "test_rollback_safety",
        "test_scheduled_run",
    )
)
"""Modules that share the operator stack (the ``ops`` fixture): one worker runs them all, first."""
LAST = "tests/e2e/test_demo.py"
"""The demos time their own rollback: they run last, once the stacks' starts no longer load the CPU."""


def scope_of(nodeid: str) -> str:
    """The unit of work a test belongs to under xdist: its module, or the operator stack's modules."""
    module = nodeid.split("::")[0]
    return "operator stack" if module in OPERATOR_MODULES else module


def run_order(nodeid: str) -> int:
    """Longest first: the operator stack's modules, then the rest, the demos last."""
    module = nodeid.split("::")[0]
    return 0 if module in OPERATOR_MODULES else 2 if module == LAST else 1


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Send each module whole to one worker, and every module of the operator stack to the same one.

    A module's servers then start once, and the operator stack (PostgreSQL, a Prefect server and a
    worker) once a session. (``--dist loadgroup``
    would do it with ``xdist_group`` marks, but it groups nothing under pytest 9.2: pytest-xdist
    issue #1386.) Run with ``--no-loadscope-reorder``, so units go out in :func:`run_order`.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ByModuleAndStack(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return ByModuleAndStack(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run in :func:`run_order` (xdist hands the units of work out in collection order)."""
    items.sort(key=lambda item: run_order(item.nodeid))
