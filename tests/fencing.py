"""The fencing check every router must pass, on kmock and on a real API server alike."""

import pytest

from rollout.adapters.kubernetes import Cluster
from rollout.audience.flag_state import Fence, FencedOff
from rollout.plan.model import RouterSettings


def check_router_fencing(cluster: Cluster, router: RouterSettings) -> None:
    """A write under an older epoch is refused once a newer one wrote; each plan has its own epochs."""
    cluster.set_weight(router, 50, fence=Fence("orders", 3))  # the rollout, epoch 3
    cluster.set_weight(router, 0, fence=Fence("orders", 4))  # a rollback took over: epoch 4
    with pytest.raises(FencedOff, match="epoch 4, newer than this writer's 3"):
        cluster.set_weight(router, 100, fence=Fence("orders", 3))  # the old run, still going
    assert cluster.router_state(router).canary_percent == 0
    cluster.set_weight(router, 25, fence=Fence("other-plan", 1))
    assert cluster.router_state(router).canary_percent == 25
