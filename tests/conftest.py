from collections.abc import Iterator

import pytest

from tests.control_plane import ControlPlane, missing, started


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real Kubernetes control plane for the whole session; the test skips, saying why, without one."""
    why = missing()
    if why is not None:
        pytest.skip(why)
    yield from started(tmp_path_factory.mktemp("k8s"))
