from pathlib import Path

import pytest

from rollout.adapters.kubernetes_client import KubernetesConfigInvalid, api_client
from rollout.plan.model import KubernetesTarget


def test_a_kubeconfig_that_does_not_exist_is_named_with_the_fix() -> None:
    target = KubernetesTarget(deployment="orders", kubeconfig="/no/such/kubeconfig")
    with pytest.raises(KubernetesConfigInvalid, match="kubeconfig: /no/such/kubeconfig does not exist: give"):
        api_client(target)


def test_no_kubeconfig_anywhere_outside_a_cluster_says_the_three_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    said = r"no kubeconfig at ~/\.kube/config and not running inside"
    with pytest.raises(KubernetesConfigInvalid, match=said):
        api_client(KubernetesTarget(deployment="orders"))


def test_a_kubeconfig_that_is_not_one_is_refused_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "config"
    broken.write_text("just: words\n")
    with pytest.raises(KubernetesConfigInvalid, match=f"{broken} cannot be used"):
        api_client(KubernetesTarget(deployment="orders", kubeconfig=str(broken)))


def test_ca_data_that_is_not_a_certificate_is_refused() -> None:
    target = KubernetesTarget(deployment="orders", api_url="https://10.0.0.1:6443", ca_data="${env:CA}")
    with pytest.raises(KubernetesConfigInvalid, match="ca_data: the value holds no PEM certificate"):
        api_client(target, ca_data="not a certificate")
