from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control_plane import ControlPlane, missing, started
from tests.plans import PlanFiles


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real Kubernetes control plane for the whole session; the test skips, saying why, without one."""
    why = missing()
    if why is not None:
        pytest.skip(why)
    yield from started(tmp_path_factory.mktemp("k8s"))


@pytest.fixture()
def plan_file(tmp_path: Path) -> PlanFiles:
    """Writes plans into the test's folder (no targets: integration tests get the sandbox's)."""
    return PlanFiles(tmp_path)
