from datetime import timedelta

from rollout.analysis.health_watch import Probe, watch
from rollout.clock import FakeClock


def test_an_hour_at_30_s_is_121_probes_and_passes_when_all_are_healthy() -> None:
    clock = FakeClock()
    result = watch(lambda: Probe("health", True, "200"), timedelta(seconds=30), timedelta(hours=1), clock)
    assert (result.probes, result.healthy, result.ok) == (121, 121, True)
    assert sum(clock.slept) == 3600


def test_one_unhealthy_probe_fails_the_watch_and_is_reported() -> None:
    answers = iter([True, False, True, True])
    result = watch(
        lambda: Probe("health", next(answers), "GET /health: HTTP 503"),
        timedelta(seconds=10),
        timedelta(seconds=30),
        FakeClock(),
    )
    assert not result.ok
    assert result.describe() == "3/4 probes healthy; first failure: 00:00:10 GET /health: HTTP 503"
