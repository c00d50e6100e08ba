"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) for tests.

It is started by the ``control-plane`` script of ``../shared/k8s`` (or ``$K8S_CONTROL_PLANE``):
HTTPS with a CA of its own, RBAC, static tokens (``admin``, ``nobody``), the real
deployment controller, no nodes. Where the script or etcd is missing, the tests that
need it skip and say why; the kmock tests in ``tests/kubernetes`` still run there.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(os.environ.get("K8S_CONTROL_PLANE", ROOT.parent / "shared" / "k8s" / "control-plane"))
GATEWAY_CRDS = SCRIPT.parent / "crds" / "gateway-api-v1.6.1-standard.yaml"
_namespaces = itertools.count(1)


def missing() -> str | None:
    """Why a control plane cannot start here, or None when it can."""
    if not SCRIPT.is_file():
        return f"no real Kubernetes control plane here ({SCRIPT} does not exist; CI has it)"
    for tool, package in (("etcd", "etcd-server"), ("kubectl", "kubectl")):
        if shutil.which(tool) is None:
            return f"no {tool} on PATH (apt-get install {package}; `make setup` does it)"
    return None


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane: where it is, how to trust it, who may do what."""

    state: Path
    api_url: str
    ca_file: Path
    kubeconfig: Path
    nobody_kubeconfig: Path

    def token(self, user: str) -> str:
        """The static token of ``user`` (``admin``, ``nobody``)."""
        for line in (self.state / "pki" / "tokens.csv").read_text().splitlines():
            token, name, *_ = line.split(",")
            if name == user:
                return token
        raise KeyError(user)

    def admin(self) -> k8s.ApiClient:
        """A client with every right, from the admin kubeconfig."""
        client: k8s.ApiClient = k8s_config.new_client_from_config(str(self.kubeconfig))  # type: ignore[no-untyped-call]
        return client

    def kubectl(self, *args: str) -> str:
        """Run kubectl as admin; its output."""
        done = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
        return done.stdout

    def namespace(self) -> str:
        """A new, empty namespace."""
        name = f"t{next(_namespaces)}"
        core: Any = k8s.CoreV1Api(self.admin())
        core.create_namespace({"metadata": {"name": name}})
        return name

    def install_gateway_api(self) -> None:
        """The Gateway API CRDs (HTTPRoute), unless they are there already."""
        crd = "crd/httproutes.gateway.networking.k8s.io"
        if crd.removeprefix("crd/") not in self.kubectl("get", "crd", "-o", "name"):
            self.kubectl("apply", "--server-side", "-f", str(GATEWAY_CRDS))
        self.kubectl("wait", "--for", "condition=established", crd)


def started(state: Path) -> Iterator[ControlPlane]:
    """Start a control plane with its state in ``state``; stop it afterwards."""
    up = subprocess.run(["bash", str(SCRIPT), "up", str(state)], capture_output=True, text=True, timeout=300)
    try:
        if up.returncode != 0:
            raise RuntimeError(f"control-plane up failed ({up.returncode}):\n{up.stderr[-3000:]}")
        env = dict(line.split("=", 1) for line in (state / "env").read_text().splitlines() if "=" in line)
        yield ControlPlane(
            state=state,
            api_url=env["API_URL"],
            ca_file=Path(env["CA_FILE"]),
            kubeconfig=Path(env["KUBECONFIG"]),
            nobody_kubeconfig=state / "nobody.kubeconfig",
        )
    finally:
        subprocess.run(["bash", str(SCRIPT), "down", str(state)], capture_output=True, timeout=120)
