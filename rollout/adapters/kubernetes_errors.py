"""Kubernetes API errors as ours: what was refused, on which object, and what to do about it.

A 404 is a missing object, 403 and 401 missing rights or credentials, a certificate that
cannot be verified permanent; 409 (and a 422 from a JSON patch's failed ``test``) is a
:class:`Conflict` the caller reads again; a 5xx, 429 or lost connection is transient.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError, MaxRetryError
from urllib3.exceptions import SSLError as Urllib3SSLError

from rollout.errors import PermanentError, ServiceRejected, ServiceUnavailable

SERVICE = "Kubernetes"


class KubernetesObjectMissing(PermanentError):
    """The named object does not exist in the namespace."""


class KubernetesTlsUnverified(PermanentError):
    """The API server's certificate could not be verified: no retry makes it trusted."""


class KubernetesForbidden(PermanentError):
    """The credentials may not do this (RBAC, 403) or were not accepted (401)."""


class KubernetesConflict(ServiceUnavailable):
    """The object changed between every read and write: another writer is busy with it."""


class DeploymentPaused(PermanentError):
    """The Deployment is paused, so a new template would not roll out."""


class Conflict(Exception):
    """The object changed between our read and our write."""


def _said(error: ApiException) -> str:
    """The API server's own message (``User "x" cannot patch resource ...``), else the HTTP reason."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or error.reason)


def _unverified_certificate(error: HTTPError) -> str | None:
    """Why the API server's certificate was refused, when that is why the request failed.

    Other TLS failures (a handshake cut short) may pass and stay transient.
    """
    cause: BaseException | None = error.reason if isinstance(error, MaxRetryError) else error
    for _ in range(4):  # urllib3 wraps ssl's error once or twice
        if isinstance(cause, ssl.SSLCertVerificationError):
            return str(cause.verify_message or cause)
        if not isinstance(cause, Urllib3SSLError) or not cause.args:
            return None
        cause = cause.args[0] if isinstance(cause.args[0], BaseException) else None
    return None


@contextmanager
def kubernetes_errors(
    action: str, kind: str, name: str, namespace: str, endpoint: str = "", tested: bool = False
) -> Iterator[None]:
    """Translate client exceptions raised inside the block into ours, naming the object.

    ``tested``: the request was a JSON patch with a ``test`` operation, whose failure (422
    with no field named) means the list changed since it was read.
    """
    what = f"{action} {kind} {namespace}/{name}"
    try:
        yield
    except ApiException as error:
        status = int(error.status or 0)
        if status == 404:
            raise KubernetesObjectMissing(
                f"{kind} {name!r} does not exist in namespace {namespace!r} ({action}): "
                "check targets.kubernetes in the plan"
            ) from error
        if status == 409:
            raise Conflict(f"{what}: changed meanwhile") from error
        if status == 422 and tested and not _causes(error):
            raise Conflict(f"{what}: the list it changes changed meanwhile") from error
        if status == 403:
            raise KubernetesForbidden(
                f"{what}: forbidden: {_said(error)}: give the plan's credentials that right (a Role and "
                "RoleBinding in the namespace)"
            ) from error
        if status == 401:
            raise KubernetesForbidden(
                f"{what}: the API server did not accept the credentials (401): check "
                "targets.kubernetes.token or the kubeconfig's user"
            ) from error
        if status >= 500 or status == 429 or status == 0:
            raise ServiceUnavailable(SERVICE, f"{what}: {status} {_said(error)}") from error
        raise ServiceRejected(SERVICE, f"{what}: {status} {_said(error)}") from error
    except HTTPError as error:
        problem = _unverified_certificate(error)
        if problem is not None:
            raise KubernetesTlsUnverified(
                f"{what}: the certificate of {endpoint or 'the API server'} cannot be verified ({problem}): "
                "set targets.kubernetes.ca_file (or ca_data) to the cluster's CA, e.g. the decoded "
                "certificate-authority-data of its kubeconfig"
            ) from error
        raise ServiceUnavailable(SERVICE, f"{what}: {error}") from error


def _causes(error: ApiException) -> list[Any]:
    """The fields a 422 names (none when a JSON patch's ``test`` failed)."""
    try:
        details = json.loads(error.body or "{}").get("details") or {}
    except (ValueError, AttributeError):
        return []
    return list(details.get("causes") or [])
