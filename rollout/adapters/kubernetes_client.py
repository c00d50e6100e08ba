"""A Kubernetes API client for a plan's cluster: which credentials, which CA to trust, clear errors.

The order is kubectl's: ``api_url`` (+ ``token``) when the plan gives one, else the
kubeconfig the plan names, else ``$KUBECONFIG`` or ``~/.kube/config``, else the
in-cluster service account. ``ca_file`` / ``ca_data`` replace the CA the kubeconfig
names; ``insecure_skip_tls_verify`` turns verification off and says so at every connection.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from urllib3.exceptions import InsecureRequestWarning

from rollout.errors import InputRejected
from rollout.plan.model import KubernetesTarget

LOG = logging.getLogger("rollout.kubernetes")
PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
IN_CLUSTER = "KUBERNETES_SERVICE_HOST"


class KubernetesConfigInvalid(InputRejected):
    """The plan's way to reach the cluster cannot work (no kubeconfig, no such context, a bad CA)."""


def api_client(
    target: KubernetesTarget, token: str | None = None, ca_data: str | None = None
) -> k8s.ApiClient:
    """A client for the target's cluster, ``token`` and ``ca_data`` already resolved."""
    configuration = k8s.Configuration()
    if target.api_url:
        configuration.host = target.api_url.rstrip("/")
        if token:
            configuration.api_key = {"authorization": f"Bearer {token}"}
    else:
        _load_config(target, configuration)
    _trust(target, configuration, ca_data)
    return k8s.ApiClient(configuration)


def _load_config(target: KubernetesTarget, configuration: k8s.Configuration) -> None:
    """Fill ``configuration`` from the kubeconfig (the plan's, the environment's) or the pod's account."""
    if target.kubeconfig:
        path = Path(target.kubeconfig).expanduser()
        if not path.is_file():
            raise KubernetesConfigInvalid(
                f"targets.kubernetes.kubeconfig: {target.kubeconfig} does not exist: give the path of a "
                "kubeconfig, or api_url and token"
            )
        config_file: str | None = str(path)
    else:
        listed = os.environ.get("KUBECONFIG", "")
        candidates = [Path(p).expanduser() for p in listed.split(os.pathsep) if p] or [
            Path("~/.kube/config").expanduser()
        ]
        if not any(p.is_file() for p in candidates):
            if os.environ.get(IN_CLUSTER):
                k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                return
            where = f"KUBECONFIG={listed}" if listed else "~/.kube/config"
            raise KubernetesConfigInvalid(
                f"targets.kubernetes: no kubeconfig at {where} and not running inside a cluster: set "
                "targets.kubernetes.kubeconfig, or api_url and token"
            )
        config_file = None  # the client reads $KUBECONFIG (every file it lists) or ~/.kube/config itself
    shown = config_file or os.environ.get("KUBECONFIG") or "~/.kube/config"
    if target.context:
        _known_context(config_file, target.context, shown)
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=config_file,
            context=target.context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (k8s_config.ConfigException, OSError, ValueError) as error:
        raise _unusable(shown, error) from error


def _known_context(config_file: str | None, context: str, shown: str) -> None:
    """Refuse a context the kubeconfig does not have, listing the ones it has."""
    try:
        contexts, _ = k8s_config.list_kube_config_contexts(config_file)  # type: ignore[no-untyped-call]
    except (k8s_config.ConfigException, OSError, ValueError) as error:
        raise _unusable(shown, error) from error
    names = [c["name"] for c in contexts or []]
    if context not in names:
        raise KubernetesConfigInvalid(
            f"targets.kubernetes.context: {context!r} is not a context of {shown}; it has "
            f"{', '.join(names) or 'none'}"
        )


def _unusable(shown: str, error: Exception) -> KubernetesConfigInvalid:
    return KubernetesConfigInvalid(f"targets.kubernetes.kubeconfig: {shown} cannot be used: {error}")


def _trust(target: KubernetesTarget, configuration: k8s.Configuration, ca_data: str | None) -> None:
    """Which certificate authority verifies the API server, or (said loudly) none."""
    if target.ca_file:
        configuration.ssl_ca_cert = str(Path(target.ca_file).expanduser())
    elif ca_data is not None:
        configuration.ssl_ca_cert = str(_ca_file_of(ca_data))
    if target.insecure_skip_tls_verify:
        configuration.verify_ssl = False
        LOG.warning(
            "TLS verification is OFF for %s (targets.kubernetes.insecure_skip_tls_verify): anything between "
            "here and the cluster can pose as its API server; give ca_file instead",
            configuration.host,
        )
        # Said once above; urllib3 would say it again at every request.
        warnings.filterwarnings("ignore", category=InsecureRequestWarning)


def _ca_file_of(pem: str) -> Path:
    """A file holding ``pem`` (the client reads CAs from files only), named by its content."""
    if PEM_CERTIFICATE not in pem:
        raise KubernetesConfigInvalid(
            "targets.kubernetes.ca_data: the value holds no PEM certificate (no -----BEGIN CERTIFICATE----- "
            "line): give the CA certificate itself"
        )
    path = Path(tempfile.gettempdir()) / f"rollout-ca-{hashlib.sha256(pem.encode()).hexdigest()[:16]}.crt"
    if not path.is_file():
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(pem)
        partial.replace(path)
    return path
