from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.kmock_cluster import EmulatorThread


@pytest.fixture()
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread() as running:
        yield running


@pytest.fixture()
def api(emulator: EmulatorThread) -> Iterator[k8s.ApiClient]:
    configuration = k8s.Configuration()
    configuration.host = emulator.url
    with k8s.ApiClient(configuration) as client:
        yield client
