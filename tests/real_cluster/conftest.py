from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from rollout.breaker import reset_all
from tests.control_plane import ControlPlane


@pytest.fixture()
def ns(control_plane: ControlPlane) -> str:
    """A fresh namespace on the real control plane, every circuit breaker closed."""
    reset_all()
    return control_plane.namespace()


@pytest.fixture()
def admin(control_plane: ControlPlane) -> Iterator[k8s.ApiClient]:
    """A client with every right."""
    with control_plane.admin() as client:
        yield client
