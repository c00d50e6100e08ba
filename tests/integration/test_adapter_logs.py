"""Our adapters' warnings reach the run's log in Prefect, and stay quiet on the console outside runs."""

import logging
import time
import warnings

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

import flows  # noqa: F401  (installs the forwarding)

pytestmark = pytest.mark.integration


@flow
def warns() -> None:
    logging.getLogger("rollout.kubernetes").warning("TLS verification is OFF for https://k8s.example:6443")


def test_an_adapter_warning_inside_a_run_is_in_the_runs_log_and_outside_one_warns_about_nothing(
    prefect_api: None,
) -> None:
    state = warns(return_state=True)
    run = state.state_details.flow_run_id
    found: list[str] = []
    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        while "TLS verification is OFF for https://k8s.example:6443" not in found:
            assert time.monotonic() < deadline, found
            time.sleep(0.5)
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run])), limit=50, offset=0)
            found = [log.message for log in logs]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Prefect's "without a flow run id" warning would raise here
        logging.getLogger("rollout.kubernetes").warning("a warning from the command line")
