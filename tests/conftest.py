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
"""The modules that share the session's operator stack (the ``ops`` fixture): one worker runs them all."""


def scope_of(nodeid: str) -> str:
    """The unit of work a test belongs to under xdist: its module, or the operator stack's modules."""
    module = nodeid.split("::")[0]
    return "operator stack" if module in OPERATOR_MODULES else module


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Send each module whole to one worker, and every module of the operator stack to the same one.

    A module's servers then start once, and the operator stack (PostgreSQL, a Prefect server and a
    worker) once per session. (``--dist loadgroup`` would do it with ``xdist_group`` marks, but it
    groups nothing under pytest 9.2: pytest-xdist issue #1386.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class ByModuleAndStack(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return ByModuleAndStack(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The operator stack's tests first: together they run longest, all on one worker."""
    items.sort(key=lambda item: scope_of(item.nodeid) != "operator stack")
