"""The plan's targets: the systems it acts on (MongoDB, S3, Prometheus, Kubernetes, the service)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from rollout.durations import Duration
from rollout.plan.model.base import StrictModel
from rollout.plan.model.deploy import DeployTarget
from rollout.plan.model.flag_targets import FlagdTarget, FlagStoreTarget, UnleashTarget
from rollout.plan.secrets import ConnectionString, SecretValue

# --- targets -------------------------------------------------------------------------------


class MongoTarget(StrictModel):
    """The MongoDB deployment that holds the application's data."""

    uri: ConnectionString = Field(
        description="Connection string. Credentials only as references, "
        "e.g. `mongodb://app:${env:DB_PASSWORD}@db:27017/?authSource=admin`."
    )
    database: str = Field(min_length=1, description="Database the checks, backup and flags use.")


class S3Target(StrictModel):
    """Where backups are written."""

    bucket: str = Field(min_length=3, max_length=63, description="Bucket name.")
    prefix: str = Field(default="", description="Key prefix for every object, e.g. `orders/`.")
    region: str = Field(default="us-east-1", description="AWS region of the bucket.")
    endpoint_url: str | None = Field(
        default=None, description="Custom endpoint (MinIO, moto); leave empty for AWS."
    )
    access_key_id: SecretValue | None = Field(
        default=None, description="Reference to the access key id; empty uses the AWS chain."
    )
    secret_access_key: SecretValue | None = Field(
        default=None, description="Reference to the secret key; empty uses the AWS chain."
    )
    sse: Literal["AES256", "aws:kms"] | None = Field(
        default="AES256", description="Server-side encryption of every object."
    )
    kms_key_id: str | None = Field(
        default=None, description="KMS key id or ARN; required when `sse` is `aws:kms`."
    )

    @model_validator(mode="after")
    def _kms_needs_key(self) -> Self:
        if self.sse == "aws:kms" and not self.kms_key_id:
            raise ValueError("sse 'aws:kms' needs kms_key_id: set the key id or ARN")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither")
        return self


class SliSettings(StrictModel):
    """How the service's metrics are named in Prometheus, used to build the built-in SLIs."""

    requests_metric: str = Field(
        default="http_requests_total", description="Counter of requests with a `status` label."
    )
    duration_metric: str = Field(
        default="http_request_duration_seconds", description="Histogram of request durations."
    )
    variant_label: str = Field(default="variant", description="Label telling the variants apart.")
    candidate: str = Field(default="candidate", description="Label value of the new code path.")
    stable: str = Field(default="stable", description="Label value of the old code path.")
    selector: dict[str, str] = Field(
        default_factory=dict, description="Extra label matchers for every SLI, e.g. `job: orders`."
    )


class PrometheusTarget(StrictModel):
    """The Prometheus server the gates query."""

    url: ConnectionString = Field(description="Base URL, e.g. `http://prometheus:9090`.")
    bearer_token: SecretValue | None = Field(
        default=None, description="Reference to a bearer token, when the server requires one."
    )
    timeout: Duration = Field(default=timedelta(seconds=10), description="Per-query timeout.")
    sli: SliSettings = Field(default_factory=SliSettings, description="Metric names for SLIs.")


class RouterSettings(StrictModel):
    """How the Kubernetes traffic split is expressed."""

    kind: Literal["httproute", "nginx-canary", "replicas"] = Field(
        description="`httproute`: Gateway API backendRef weights; `nginx-canary`: a canary "
        "Ingress's canary-weight; `replicas`: the replica ratio of two Deployments."
    )
    name: str = Field(description="HTTPRoute, canary Ingress or canary Deployment name.")
    stable_backend: str | None = Field(
        default=None, description="Stable Service (httproute) or Deployment (replicas)."
    )
    canary_backend: str | None = Field(default=None, description="Canary Service name (httproute).")


class KubernetesTarget(StrictModel):
    """The cluster that runs the service."""

    namespace: str = Field(default="default", description="Namespace of the workload.")
    deployment: str = Field(description="The service's Deployment, for `rollout undo`.")
    context: str | None = Field(default=None, description="kubeconfig context to use.")
    kubeconfig: str | None = Field(
        default=None, description="kubeconfig path; empty uses in-cluster config or ~/.kube."
    )
    router: RouterSettings | None = Field(
        default=None, description="Traffic router; empty means traffic is split by flags only."
    )
    api_url: str | None = Field(
        default=None,
        description="API server URL to use instead of a kubeconfig, e.g. `https://10.0.0.1:6443`.",
    )
    token: SecretValue | None = Field(
        default=None, description="Bearer token for `api_url`, as `${env:...}` or `${secret:...}`."
    )
    image_repository: str | None = Field(
        default=None,
        description="Image repository, e.g. `registry.example.com/orders`; with it, a rollback sets the "
        "image to `<repository>:<stable version>`; without it, it returns to the previous revision.",
    )
    container: str | None = Field(
        default=None, description="Container whose image is the release; empty means the first one."
    )
    ca_file: str | None = Field(
        default=None,
        description="PEM file of the cluster's CA, to verify the API server's certificate (with `api_url`, "
        "or instead of the kubeconfig's).",
    )
    ca_data: SecretValue | None = Field(
        default=None,
        description="The cluster's CA certificate (PEM text), as `${env:...}` or `${secret:...}`; "
        "instead of `ca_file`.",
    )
    insecure_skip_tls_verify: bool = Field(
        default=False,
        description="Do not verify the API server's certificate (logged as a warning at every connection); "
        "only for a throwaway cluster, never with `ca_file` or `ca_data`.",
    )

    @field_validator("ca_file")
    @classmethod
    def _pem_file(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_file():
            raise ValueError(f"{value} is not a file: give the path of the cluster's CA certificate (PEM)")
        try:
            text = path.read_text(errors="replace")
        except OSError as error:
            raise ValueError(f"{value} cannot be read: {error.strerror}") from error
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ValueError(
                f"{value} holds no PEM certificate (no -----BEGIN CERTIFICATE----- line): give the CA "
                "certificate itself, e.g. the base64-decoded certificate-authority-data of a kubeconfig"
            )
        return value

    @model_validator(mode="after")
    def _one_way_to_trust(self) -> Self:
        given = [name for name in ("ca_file", "ca_data") if getattr(self, name)]
        if len(given) > 1:
            raise ValueError("give ca_file or ca_data, not both")
        if given and self.insecure_skip_tls_verify:
            raise ValueError(
                f"insecure_skip_tls_verify turns off the check that {given[0]} is for: keep one of them"
            )
        return self

    @model_validator(mode="after")
    def _router_backends(self) -> Self:
        router = self.router
        if router is None:
            return self
        if router.kind == "httproute" and not (router.stable_backend and router.canary_backend):
            raise ValueError("an httproute router needs stable_backend and canary_backend (Service names)")
        if router.kind == "replicas" and not router.stable_backend:
            raise ValueError("a replicas router needs stable_backend (the stable Deployment's name)")
        return self


class SmokeRequest(StrictModel):
    """One HTTP request of the smoke scenario, run in order after a rollback."""

    name: str = Field(description="What the request proves, e.g. `create order`.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field(
        default="GET", description="HTTP method."
    )
    path: str = Field(pattern=r"^/", description="Path below `base_url`, starting with `/`.")
    json_body: dict[str, Any] | None = Field(default=None, alias="json", description="JSON body to send.")
    expect_status: int = Field(default=200, ge=100, le=599, description="Expected status code.")


class ServiceTarget(StrictModel):
    """The service being rolled out, reached over HTTP."""

    base_url: ConnectionString = Field(description="Base URL, e.g. `https://orders.internal`.")
    health_path: str = Field(default="/health", pattern=r"^/", description="Health endpoint.")
    headers: dict[str, SecretValue] = Field(
        default_factory=dict, description="Headers sent with every request, as references."
    )
    smoke: list[SmokeRequest] = Field(
        default_factory=list, description="Smoke scenario: requests that must all succeed."
    )


class Targets(StrictModel):
    """The external systems a plan acts on. Omit `targets` to use the local sandbox."""

    mongodb: MongoTarget = Field(description="Application database.")
    s3: S3Target | None = Field(default=None, description="Backup bucket; needed for backups.")
    prometheus: PrometheusTarget = Field(description="Metrics for the gates.")
    kubernetes: KubernetesTarget | None = Field(
        default=None, description="Cluster and traffic router; empty means flags only."
    )
    deploy: DeployTarget | None = Field(
        default=None, description="A deploy command or webhook that puts the stable release back."
    )
    flag_store: FlagStoreTarget = Field(
        default_factory=FlagStoreTarget, description="Where the rollout records (and MongoDB flags) are kept."
    )
    unleash: UnleashTarget | None = Field(
        default=None, description="Keep the flags in Unleash instead of MongoDB."
    )
    flagd: FlagdTarget | None = Field(
        default=None, description="Keep the flags in a flagd (OpenFeature) file instead of MongoDB."
    )
    service: ServiceTarget = Field(description="The service's health and smoke endpoints.")

    @model_validator(mode="after")
    def _one_flag_provider(self) -> Self:
        if self.unleash is not None and self.flagd is not None:
            raise ValueError("flags live in one place: set unleash or flagd, not both")
        return self

    @property
    def flag_refresh(self) -> timedelta:
        """How long after a flag write the services act on it (0 for MongoDB flags read directly)."""
        provider = self.unleash or self.flagd
        return provider.refresh_interval if provider is not None else timedelta(0)

    @property
    def flag_provider(self) -> str:
        """Which system holds the flags: ``mongodb``, ``unleash`` or ``flagd``."""
        return "unleash" if self.unleash else "flagd" if self.flagd else "mongodb"
