"""The rollout plan: what users write, as pydantic models.

Every model forbids unknown keys and every field carries a description, which
``rollout.plan.reference`` turns into the README's plan reference. Checks that
span several fields of one model live here as validators; checks that span the
whole plan (gate references, ramp order across phases) live in
``rollout.plan.loader`` so that each problem can name its exact path.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from rollout.durations import Duration
from rollout.plan.secrets import ConnectionString, SecretValue

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
BsonType = Literal[
    "double",
    "string",
    "object",
    "array",
    "binData",
    "objectId",
    "bool",
    "date",
    "null",
    "regex",
    "int",
    "timestamp",
    "long",
    "decimal",
    "number",
]


def _read_only(pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``pipeline`` if no stage of it writes (``$out``, ``$merge``); else a message saying which to remove."""
    for stage in pipeline:
        writes = {"$out", "$merge"} & set(stage)
        if writes:
            stages = ", ".join(sorted(writes))
            raise ValueError(f"the rollout only reads data: remove the {stages} stage")
    return pipeline


ReadOnlyPipeline = Annotated[list[dict[str, Any]], AfterValidator(_read_only)]
"""An aggregation pipeline the rollout runs to read data, never to change it."""


class StrictModel(BaseModel):
    """Base for plan models: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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


VERSION_PLACEHOLDER = "{version}"


class DeployCommand(StrictModel):
    """A program that deploys a version: run as an argument list, never through a shell."""

    argv: list[str] = Field(
        min_length=1,
        description="Program and arguments; `{version}` in any of them becomes the release to deploy, "
        "e.g. `[./deploy.sh, --tag, '{version}']`.",
    )
    cwd: str | None = Field(default=None, description="Directory to run it in; empty: the working directory.")
    env: dict[str, SecretValue] = Field(
        default_factory=dict, description="Extra environment variables, as `${env:...}` or `${secret:...}`."
    )
    timeout: Duration = Field(default=timedelta(minutes=10), description="Longest it may run.")


class DeployWebhook(StrictModel):
    """An HTTP call that deploys a version (a platform's deploy hook)."""

    method: Literal["POST", "PUT", "PATCH"] = Field(default="POST", description="HTTP method.")
    url: ConnectionString = Field(description="Deploy hook URL; a secret part as a reference.")
    headers: dict[str, SecretValue] = Field(default_factory=dict, description="Headers, as references.")
    json_body: dict[str, Any] = Field(
        default_factory=dict,
        alias="json",
        description="JSON body; `{version}` in any string becomes the release to deploy.",
    )
    timeout: Duration = Field(default=timedelta(minutes=1), description="Longest the call may take.")


class DeployTarget(StrictModel):
    """How to put a release in place where Kubernetes is not the deployer: a command or a webhook."""

    command: DeployCommand | None = Field(default=None, description="A program to run.")
    webhook: DeployWebhook | None = Field(default=None, description="A deploy hook to call.")
    health_wait: Duration = Field(
        default=timedelta(minutes=2),
        description="After deploying, how long the service's health may take to answer 2xx (and to report "
        "the version, with `version_field`).",
    )
    version_field: str | None = Field(
        default=None,
        description="Field of the health endpoint's JSON that names the running version, e.g. `version`: "
        "the rollback waits until it is the stable release.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        if (self.command is None) == (self.webhook is None):
            raise ValueError("set exactly one of command or webhook")
        return self


class FlagStoreTarget(StrictModel):
    """The MongoDB collection of flags (when no `unleash` or `flagd` is set) and of rollout records."""

    collection: str = Field(
        default="feature_flags", description="Collection of flag documents, when MongoDB holds the flags."
    )
    database: str | None = Field(
        default=None,
        description="Database of the flags and the rollout records; empty uses `mongodb.database`.",
    )


class UnleashTarget(StrictModel):
    """An Unleash server holding the flags, driven through its Admin API."""

    url: ConnectionString = Field(
        description="Unleash's base URL, without `/api`, e.g. `https://unleash.internal`."
    )
    api_token: SecretValue = Field(
        description="Reference to an admin or personal access token allowed to change the project's flags."
    )
    project: str = Field(default="default", description="Project holding the flags.")
    environment: str = Field(description="Environment the applications read, e.g. `production`.")
    store_field: str = Field(
        default="storeId", description="Context field the applications set to the store id, for pilot stores."
    )
    timeout: Duration = Field(default=timedelta(seconds=10), description="Per-request timeout.")
    refresh_interval: Duration = Field(
        default=timedelta(seconds=15),
        description="How often your services' SDKs fetch the flags (Unleash's default 15 s): a step's "
        "first measurement waits this long more, so it reads the new audience.",
    )


class FlagdTarget(StrictModel):
    """flagd flag definitions, read by flagd or any OpenFeature SDK's in-process flagd provider."""

    path: str | None = Field(
        default=None,
        description="A JSON file of flag definitions (flagd's schema); flags not named in the plan are "
        "left as they are.",
    )
    configmap: str | None = Field(
        default=None,
        description="Instead of `path`: a ConfigMap in `targets.kubernetes.namespace` holding the "
        "definitions (flagd's Kubernetes sync or a mounted volume serves them).",
    )
    key: str = Field(default="flags.json", description="The ConfigMap's key holding the definitions.")
    store_field: str = Field(
        default="storeId", description="Evaluation-context key the applications set to the store id."
    )
    refresh_interval: Duration = Field(
        default=timedelta(seconds=5),
        description="How long until your services read a change (a provider's file poll, 5 s by "
        "default; a mounted ConfigMap: kubelet's sync, about a minute): a step's first measurement "
        "waits this long more.",
    )

    @model_validator(mode="after")
    def _one_place(self) -> Self:
        if (self.path is None) == (self.configmap is None):
            raise ValueError("set path (a file) or configmap (a ConfigMap), exactly one")
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


# --- preflight checks ----------------------------------------------------------------------


class RequiredFieldsCheck(StrictModel):
    """Every document has these fields, each of the given BSON type."""

    name: str | None = Field(default=None, description="Name in reports; defaults to a summary.")
    collection: str = Field(description="Collection to check.")
    fields: dict[str, BsonType | list[BsonType]] = Field(
        min_length=1, description="Field path -> BSON type alias (or a list of accepted ones)."
    )


class DuplicatesCheck(StrictModel):
    """No two documents share the same key."""

    name: str | None = Field(default=None, description="Name in reports.")
    collection: str = Field(description="Collection to check.")
    key: list[str] = Field(min_length=1, description="Field paths that together must be unique.")


class OrphansCheck(StrictModel):
    """Every reference points at an existing document."""

    name: str | None = Field(default=None, description="Name in reports.")
    collection: str = Field(description="Collection holding the references.")
    field: str = Field(description="Referencing field, e.g. `order_hub_id`.")
    references: str = Field(description="Referenced collection, e.g. `order_hub`.")
    references_field: str = Field(default="_id", description="Referenced field.")


class BackfillCheck(StrictModel):
    """Every document of each source collection was copied into the hub collection."""

    name: str | None = Field(default=None, description="Name in reports.")
    hub: str = Field(description="Collection the backfill writes, e.g. `order_hub`.")
    source_field: str = Field(default="source", description="Hub field naming the source.")
    link_field: str = Field(default="source_id", description="Hub field holding the source document's `_id`.")
    sources: dict[str, str] = Field(
        min_length=1, description="Source name -> source collection, e.g. `web: orders_web`."
    )


class Expectation(StrictModel):
    """What a custom check's result must satisfy."""

    field: str = Field(default="count", description="Field of the pipeline's first result.")
    equals: float | None = Field(default=None, description="Exact value required.")
    min: float | None = Field(default=None, description="Lowest value allowed.")
    max: float | None = Field(default=None, description="Highest value allowed.")

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if self.equals is None and self.min is None and self.max is None:
            raise ValueError("set at least one of equals, min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class CustomCheck(StrictModel):
    """An aggregation pipeline and what its first result must be."""

    name: str = Field(description="Name in reports.")
    collection: str = Field(description="Collection the pipeline runs on.")
    pipeline: ReadOnlyPipeline = Field(min_length=1, description="Aggregation pipeline (read-only).")
    expect: Expectation = Field(description="Condition on the first result document.")


class Preflight(StrictModel):
    """Data checks that must pass before anything changes."""

    required_fields: list[RequiredFieldsCheck] = Field(default_factory=list, description="Types.")
    duplicates: list[DuplicatesCheck] = Field(default_factory=list, description="Unique keys.")
    orphans: list[OrphansCheck] = Field(default_factory=list, description="Dangling references.")
    backfill: list[BackfillCheck] = Field(default_factory=list, description="Copy completeness.")
    custom: list[CustomCheck] = Field(default_factory=list, description="Pipelines of your own.")
    sample_size: int = Field(default=5, ge=0, le=100, description="Failing ids shown per check.")


# --- backup --------------------------------------------------------------------------------


class BackupSettings(StrictModel):
    """The verified backup taken before any change. Mandatory unless waived by name."""

    enabled: bool = Field(default=True, description="Take a backup before the first change.")
    waived_by: str | None = Field(
        default=None,
        description="Who decided to skip the backup and why; required when `enabled` is false.",
    )
    collections: list[str] | None = Field(
        default=None, description="Collections to back up; empty means all of them."
    )
    retention_days: int = Field(default=30, ge=1, description="Days backups are kept.")
    verify: Literal["archive", "restore"] = Field(
        default="archive",
        description="`archive` reads the stored archive back and checks its SHA-256 against the manifest; "
        "`restore` also restores it into a scratch database and compares every collection's digest.",
    )

    @model_validator(mode="after")
    def _waiver_required(self) -> Self:
        if not self.enabled and not (self.waived_by and self.waived_by.strip()):
            raise ValueError("the backup is mandatory: to skip it, set waived_by to who decided and why")
        return self


# --- gates ---------------------------------------------------------------------------------

BuiltinSli = Literal["error_ratio", "success_rate", "latency_p95", "latency_p99", "latency_avg"]


class ComparedMetric(StrictModel):
    """One metric of a candidate-versus-stable comparison."""

    name: str = Field(description="Name in reports.")
    sli: BuiltinSli | None = Field(default=None, description="Built-in SLI to compare.")
    query: str | None = Field(default=None, description="PromQL with `{{variant}}` where the variant goes.")
    direction: Literal["increase", "decrease", "either"] = Field(
        default="increase", description="Which change is bad: a rise, a fall, or either."
    )
    critical: bool = Field(default=False, description="A failure fails the whole comparison.")
    weight: float = Field(default=1.0, gt=0, description="Weight in the score.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.sli is None) == (self.query is None):
            raise ValueError("set exactly one of sli or query")
        return self


class Comparison(StrictModel):
    """Candidate against stable, judged per metric by a Mann-Whitney U test (as Kayenta)."""

    metrics: list[ComparedMetric] = Field(min_length=1, description="Metrics to compare.")
    confidence: float = Field(default=0.98, gt=0.5, lt=1, description="Test confidence.")
    pass_score: float = Field(default=95, ge=0, le=100, description="Score needed to pass.")
    marginal_score: float = Field(
        default=75, ge=0, le=100, description="Below this the result fails; between, inconclusive."
    )
    lookback: Duration = Field(default=timedelta(minutes=5), description="How far back samples are taken.")

    @model_validator(mode="after")
    def _ordered_scores(self) -> Self:
        if self.marginal_score > self.pass_score:
            raise ValueError(
                f"marginal_score ({self.marginal_score}) must not exceed pass_score ({self.pass_score})"
            )
        return self


class DriftMeasure(StrictModel):
    """Share of source documents whose copy in the hub is missing or differs (dual-write drift)."""

    hub: str = Field(description="Collection both writes reach, e.g. `order_hub`.")
    source_field: str = Field(default="source", description="Hub field naming the source.")
    link_field: str = Field(default="source_id", description="Hub field holding the source document's `_id`.")
    sources: dict[str, str] = Field(
        min_length=1, description="Source name -> source collection, e.g. `web: orders_web`."
    )
    fields: list[str] = Field(
        min_length=1, description="Fields that must be equal in a source document and its copy, e.g. `total`."
    )


class AccuracyMeasure(StrictModel):
    """Share of documents that are right: those matching `valid` among those matching `scope`."""

    collection: str = Field(description="Collection measured.")
    valid: dict[str, Any] = Field(
        min_length=1, description="Query filter a correct document matches, e.g. `{total: {$gte: 0}}`."
    )
    scope: dict[str, Any] = Field(default_factory=dict, description="Query filter of the documents judged.")


class PipelineMeasure(StrictModel):
    """Your own aggregation; the gate reads a number from its first result."""

    collection: str = Field(description="Collection the pipeline runs on.")
    pipeline: ReadOnlyPipeline = Field(min_length=1, description="Aggregation pipeline (read-only).")
    field: str = Field(description="Field of the first result holding the value.")


class DataGate(StrictModel):
    """A measurement of the data itself, run on the MongoDB server at each interval of a window."""

    drift: DriftMeasure | None = Field(default=None, description="Hub copies that differ from their source.")
    accuracy: AccuracyMeasure | None = Field(default=None, description="Share of correct documents.")
    pipeline: PipelineMeasure | None = Field(default=None, description="Your own aggregation.")
    sample: int | None = Field(
        default=1000,
        gt=0,
        description="Documents sampled (`$sample`) per collection read by drift and accuracy; "
        "empty reads all.",
    )
    recent: Duration | None = Field(
        default=None,
        description="Judge only documents whose `time_field` is this recent, e.g. `1h` "
        "(the writes of the rollout).",
    )
    time_field: str = Field(default="updated_at", description="Date field `recent` is read from.")
    max_time: Duration = Field(
        default=timedelta(seconds=10),
        description="Longest the server may spend on one reading (`maxTimeMS`); longer is an "
        "error, never a pass.",
    )

    @model_validator(mode="after")
    def _one_measure(self) -> Self:
        given = [k for k in ("drift", "accuracy", "pipeline") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of drift, accuracy or pipeline")
        return self


class Gate(StrictModel):
    """A health condition checked on every interval of an observe window."""

    sli: BuiltinSli | None = Field(
        default=None, description="Built-in SLI of the candidate: ratio, rate or seconds."
    )
    query: str | None = Field(
        default=None, description="Your own PromQL returning one value; `{{variant}}` allowed."
    )
    compare: Comparison | None = Field(default=None, description="Candidate-versus-stable test.")
    data: DataGate | None = Field(default=None, description="A measurement of the data in MongoDB.")
    max: float | None = Field(default=None, description="Fail when the value is above this.")
    min: float | None = Field(default=None, description="Fail when the value is below this.")
    rate_window: Duration = Field(
        default=timedelta(minutes=1),
        description=(
            "Range of `rate()` in built-in SLIs. A step's first measurement waits this long, so that "
            "it reads the new audience alone, not the step before."
        ),
    )
    failure_limit: int = Field(default=0, ge=0, description="Failed measurements tolerated.")
    inconclusive_limit: int = Field(default=0, ge=0, description="Inconclusive measurements tolerated.")
    consecutive_error_limit: int = Field(
        default=4, ge=0, description="Query errors in a row tolerated (errors are never a pass)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [k for k in ("sli", "query", "compare", "data") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("set exactly one of sli, query, compare or data")
        if self.compare is None and self.max is None and self.min is None:
            raise ValueError("a threshold gate needs max or min")
        if self.compare is not None and (self.max is not None or self.min is not None):
            raise ValueError("a compare gate takes no max or min; use its scores")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


# --- phases --------------------------------------------------------------------------------


class Window(StrictModel):
    """An observe window: gates measured every `interval`, `count` times or for `duration`."""

    interval: Duration = Field(default=timedelta(seconds=30), description="Time between measurements.")
    count: int | None = Field(default=None, ge=1, description="Number of measurements.")
    duration: Duration | None = Field(default=None, description="How long to observe.")
    initial_delay: Duration = Field(
        default=timedelta(0),
        description="Wait before the first measurement (never less than the gates' built-in `rate_window`).",
    )
    gates: list[str] = Field(default_factory=list, description="Names of gates from `gates`.")
    on_inconclusive: Literal["pause", "rollback"] = Field(
        default="pause", description="Inconclusive result: wait for a person, or roll back."
    )
    decision_timeout: Duration = Field(
        default=timedelta(hours=1),
        description="How long an inconclusive pause waits before rolling back.",
    )

    @field_validator("interval", "duration", "decision_timeout")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be positive, e.g. '30s'")
        return value

    @field_validator("initial_delay")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value

    @model_validator(mode="after")
    def _count_or_duration(self) -> Self:
        if (self.count is None) == (self.duration is None):
            raise ValueError("set exactly one of count or duration")
        return self

    @property
    def measurements(self) -> int:
        """How many measurements the window takes."""
        if self.count is not None:
            return self.count
        assert self.duration is not None
        return max(1, int(self.duration / self.interval))

    @property
    def length(self) -> timedelta:
        """How long the window lasts when every measurement is taken."""
        return self.initial_delay + self.interval * self.measurements


class Allowlist(StrictModel):
    """Users and stores that get the new code regardless of percentage."""

    users: list[str] = Field(default_factory=list, description="User ids or emails.")
    stores: list[str] = Field(default_factory=list, description="Store ids.")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.users and not self.stores:
            raise ValueError("name at least one user or store")
        return self


class PilotStores(StrictModel):
    """Stores chosen by a query, e.g. active shops with 10 < total_orders < 100."""

    collection: str = Field(default="shops", description="Collection of stores.")
    filter: dict[str, Any] = Field(default_factory=dict, description="MongoDB query filter.")
    sort: dict[str, Literal[1, -1]] = Field(
        default_factory=dict, description="Sort order, e.g. `created_at: -1` for newest first."
    )
    limit: int = Field(default=10, ge=1, le=10000, description="How many stores to pick.")
    id_field: str = Field(default="_id", description="Field holding the store id.")


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


class DeployWindow(StrictModel):
    """When changes may start: some days of the week, between two times of day (local time)."""

    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS),
        min_length=1,
        description="Days, e.g. `[sun, mon, tue, wed, thu]`.",
    )
    start: str = Field(pattern=CLOCK, description="From, `HH:MM`, e.g. `09:00`.")
    end: str = Field(pattern=CLOCK, description="Until, `HH:MM` (`24:00` for midnight), after `start`.")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.end <= self.start:
            raise ValueError(
                f"the window {self.start}-{self.end} is empty: end must be after start on the same day "
                "(write two windows for one across midnight)"
            )
        return self


class Freeze(StrictModel):
    """A change freeze: no step starts between `start` and `end`."""

    start: datetime = Field(description="From, e.g. `2026-12-20T00:00` (in the schedule's time zone).")
    end: datetime = Field(description="Until, after `start`.")
    reason: str = Field(default="", description="Why, for the waiting message, e.g. `year-end freeze`.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"the freeze ends ({self.end}) before it starts ({self.start})")
        return self


class Schedule(StrictModel):
    """When steps may start. A step's schedule fills in from its phase's, the phase's from the plan's;
    freezes add up. A rollback is never held by a schedule."""

    timezone: str | None = Field(
        default=None, description="IANA time zone of `windows` and of dates without one, e.g. `Asia/Riyadh`."
    )
    not_before: datetime | Duration | None = Field(
        default=None,
        description="No start before this: a date (`2026-12-07T09:00`), or a time after the rollout began "
        "(`4d`: the guide's day 5).",
    )
    windows: list[DeployWindow] | None = Field(
        default=None, min_length=1, description="Allowed windows; a step starts only inside one."
    )
    freezes: list[Freeze] = Field(default_factory=list, description="Change freezes.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone: write an IANA name such as Europe/Berlin"
            ) from None
        return value


class RampStep(StrictModel):
    """One step of a percentage ramp."""

    percentage: float = Field(ge=1, le=100, description="Share of users, 1..100.")
    window: Window | None = Field(default=None, description="Observe window; defaults to phase's.")
    schedule: Schedule | None = Field(default=None, description="When this step may start.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"percentage": value}
        return value


class Approval(StrictModel):
    """A person must approve before the phase starts."""

    timeout: Duration = Field(default=timedelta(hours=24), description="How long to wait for a decision.")
    on_timeout: Literal["rollback", "hold"] = Field(
        default="rollback",
        description="No decision in time: roll back, or stop with traffic where it is.",
    )
    checklist: list[str] = Field(
        default_factory=list,
        description=(
            "What the approver confirms, one box each in the approval form (e.g. 'support team "
            "ready'); every box must be ticked to approve."
        ),
    )

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive, e.g. '24h'")
        return value

    @field_validator("checklist")
    @classmethod
    def _distinct_items(cls, items: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for item in items:
            key = checklist_field(item)
            if not key:
                raise ValueError(f"{item!r}: an item needs letters or digits")
            if key in seen:
                raise ValueError(f"{item!r} and {seen[key]!r} are the same item; word them apart")
            seen[key] = item
        return items


def checklist_field(item: str) -> str:
    """The approval form's field for a checklist item: ``Support team ready`` -> ``support_team_ready``."""
    return re.sub(r"[^a-z0-9]+", "_", item.lower()).strip("_")


class Phase(StrictModel):
    """A stage of the rollout: who gets the new code, and how long it is watched."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique name, lowercase with dashes.")
    description: str = Field(default="", description="What this phase is for.")
    approval: Approval | None = Field(
        default=None, description="Pause for a person's approval before the phase starts."
    )
    flags: dict[str, bool] = Field(
        default_factory=dict, description="Companion on/off flags set when the phase starts."
    )
    allowlist: Allowlist | None = Field(default=None, description="Users and stores to admit.")
    pilot_stores: PilotStores | None = Field(default=None, description="Stores to admit.")
    ramp: list[RampStep] | None = Field(default=None, description="Percentage steps, in order.")
    window: Window | None = Field(
        default=None, description="Observe window after the phase's change (and ramp default)."
    )
    schedule: Schedule | None = Field(default=None, description="When the phase's steps may start.")

    @field_validator("ramp")
    @classmethod
    def _ramp_increasing(cls, steps: list[RampStep] | None) -> list[RampStep] | None:
        if steps is None:
            return None
        if not steps:
            raise ValueError("list at least one step, e.g. [10, 25, 50, 75, 100]")
        for before, after in itertools.pairwise(steps):
            if after.percentage <= before.percentage:
                raise ValueError(
                    f"percentages must increase strictly: {after.percentage:g} follows {before.percentage:g}"
                )
        return steps

    @model_validator(mode="after")
    def _does_something(self) -> Self:
        if not (self.flags or self.allowlist or self.pilot_stores or self.ramp):
            raise ValueError("a phase needs flags, allowlist, pilot_stores or ramp")
        changes_traffic = self.allowlist is not None or self.pilot_stores is not None
        if changes_traffic and self.window is None:
            raise ValueError("a phase that admits users or stores needs a window to observe them")
        if self.ramp and self.window is None:
            missing = [i for i, s in enumerate(self.ramp) if s.window is None]
            if missing:
                raise ValueError(
                    f"ramp steps {missing} have no window: give each step one or set the phase's window"
                )
        return self


# --- rollback ------------------------------------------------------------------------------


class RestoreSettings(StrictModel):
    """Whether a rollback restores data from the backup."""

    mode: Literal["none", "selective", "full"] = Field(
        default="none", description="`selective` restores `collections` only; `full` all."
    )
    collections: list[str] = Field(default_factory=list, description="Collections for a selective restore.")
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Selective restore of only the documents matching this MongoDB filter; "
        "the rest of each collection is left as it is.",
    )

    @model_validator(mode="after")
    def _selective_needs_collections(self) -> Self:
        if self.mode == "selective" and not self.collections:
            raise ValueError("a selective restore needs collections: list them")
        if self.filter is not None and self.mode != "selective":
            raise ValueError("a filter applies to a selective restore only: set mode to selective")
        return self


class CacheInvalidation(StrictModel):
    """Caches to clear after a rollback."""

    redis_url: ConnectionString | None = Field(
        default=None,
        description="Redis to clear keys in, e.g. `redis://:${env:REDIS_PASSWORD}@cache:6379/0`.",
    )
    redis_keys: list[str] = Field(
        default_factory=list, description="Key patterns (Redis glob) to delete, e.g. `orders:*`."
    )
    purge_url: ConnectionString | None = Field(
        default=None,
        description="URL that purges a CDN or cache (POST), or a path below `service.base_url`.",
    )

    @model_validator(mode="after")
    def _redis_pair(self) -> Self:
        if self.redis_keys and not self.redis_url:
            raise ValueError("redis_keys need redis_url: name the Redis to delete them in")
        if self.redis_url and not self.redis_keys:
            raise ValueError("redis_url without redis_keys deletes nothing: list the key patterns")
        return self


class Watch(StrictModel):
    """Health watched after a rollback."""

    interval: Duration = Field(default=timedelta(seconds=30), description="Time between checks.")
    duration: Duration = Field(default=timedelta(hours=1), description="How long to watch.")


class RollbackSettings(StrictModel):
    """What the compensating rollback does, besides undoing every traffic change."""

    automatic: bool = Field(
        default=True,
        description="Roll back by itself when a gate fails; when false, stop where traffic is and emit "
        "`rollout.failed` for a person or an automation to act on.",
    )
    restore: RestoreSettings = Field(default_factory=RestoreSettings, description="Data restore.")
    cache: CacheInvalidation = Field(default_factory=CacheInvalidation, description="Cache invalidation.")
    watch: Watch = Field(default_factory=Watch, description="Post-rollback health watch.")
    balance: list[CustomCheck] = Field(
        default_factory=list,
        description="Checks whose figures must agree after a rollback (e.g. orders against settlements).",
    )
    severity: Literal["SEV1", "SEV2", "SEV3"] = Field(
        default="SEV2", description="Default severity of an automatic rollback."
    )
    on_restart: Literal["resume", "rollback"] = Field(
        default="resume",
        description="A run of the same rollout that stopped half-way (a crash, a lost worker) is "
        "started again: carry on after its last completed step, or roll it back.",
    )


class UserPopulation(StrictModel):
    """Where the service's user ids live, so a dry run can count whom each step admits."""

    collection: str = Field(description="Collection of users, e.g. `users`.")
    id_field: str = Field(default="_id", description="Field holding the id the service buckets on.")
    filter: dict[str, Any] = Field(default_factory=dict, description="Which users count, e.g. active ones.")


class Release(StrictModel):
    """The versions involved."""

    version: str = Field(description="The release being rolled out, e.g. `backend-v2026.11.21-1200`.")
    stable_version: str | None = Field(default=None, description="Last stable release, the rollback target.")


# --- the plan ------------------------------------------------------------------------------


NotifyEvent = Literal[
    "started",
    "awaiting-approval",
    "step-passed",
    "promoted",
    "rolled-back",
    "rollback-incomplete",
    "held",
    "stopped",
]
"""What a rollout tells people about."""

DEFAULT_EVENTS: list[NotifyEvent] = ["awaiting-approval", "promoted", "rolled-back", "rollback-incomplete"]


class Notification(StrictModel):
    """Who is told what: a Prefect block that delivers messages, and the events it is sent."""

    block: str = Field(
        pattern=r"^[a-z0-9-]+/[a-z0-9][a-z0-9-]*$",
        description="The Prefect block, as `<type>/<name>`: `slack-webhook/releases`, "
        "`custom-webhook/ops-webhook`, `email-server-credentials/ops-smtp` (from prefect-email), or any "
        "other notification block. Its secrets stay in the block.",
    )
    events: list[NotifyEvent] = Field(
        default_factory=lambda: list(DEFAULT_EVENTS),
        min_length=1,
        description="Events sent: started, awaiting-approval, step-passed, promoted, rolled-back, "
        "rollback-incomplete, held, stopped.",
    )
    email_to: list[str] = Field(
        default_factory=list, description="Recipients, for an `email-server-credentials` block."
    )

    @model_validator(mode="after")
    def _email_needs_recipients(self) -> Self:
        if self.block.startswith("email-server-credentials/") and not self.email_to:
            raise ValueError("an email block needs email_to: the addresses to send to")
        if self.email_to and not self.block.startswith("email-server-credentials/"):
            raise ValueError("email_to is for an email-server-credentials block; the block decides who hears")
        return self


class Plan(StrictModel):
    """A whole rollout, from data checks to 100 % and back."""

    name: str = Field(pattern=NAME_PATTERN, description="Plan name, lowercase with dashes.")
    description: str = Field(default="", description="What is being rolled out.")
    release: Release = Field(description="Versions being rolled out and back to.")
    flag: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$",
        description="The feature flag whose audience the phases grow, e.g. `USE_UNIFIED_ORDERS`.",
    )
    targets: Targets | None = Field(
        default=None, description="External systems; omit to run against the local sandbox."
    )
    preflight: Preflight = Field(default_factory=Preflight, description="Data checks.")
    backup: BackupSettings = Field(default_factory=BackupSettings, description="Backup.")
    gates: dict[str, Gate] = Field(default_factory=dict, description="Named health gates.")
    phases: list[Phase] = Field(min_length=1, description="Phases, run in order.")
    rollback: RollbackSettings = Field(default_factory=RollbackSettings, description="Rollback options.")
    schedule: Schedule | None = Field(
        default=None, description="When any step may start: deploy windows, freezes, a time zone."
    )
    notify: list[Notification] = Field(
        default_factory=list, description="Messages about the rollout: to Slack, a webhook, email."
    )
    users: UserPopulation | None = Field(
        default=None, description="The user population, for the dry run's per-step counts."
    )
    lease_ttl: Duration | None = Field(
        default=None,
        description="How long a run keeps the plan to itself after its last sign of life (its heartbeat "
        "renews it every third of this, whatever the windows' length); another run of the plan is "
        "refused until then, and a run that died blocks a resume for no longer. Default: 1m.",
    )

    park_after: Duration = Field(
        default=timedelta(minutes=2),
        description="A run started from a deployment that has nothing to change for at least this long (a "
        "window measured every 5m, a 7-day window, an approval) parks: it gives its process back, the "
        "reconciler takes the window's measurements, and the run is woken when there is something to do.",
    )

    @property
    def digest(self) -> str:
        """A fingerprint of the plan as validated (formatting and comments aside)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    @property
    def lease(self) -> timedelta:
        """The lease a run holds on the plan, renewed by its heartbeat."""
        return self.lease_ttl if self.lease_ttl is not None else timedelta(minutes=1)

    @property
    def longest_window(self) -> timedelta:
        """The longest observation window of any step."""
        windows = [phase.window for phase in self.phases]
        windows += [step.window for phase in self.phases for step in phase.ramp or []]
        return max((w.length for w in windows if w is not None), default=timedelta(0))

    @property
    def flags_written(self) -> list[str]:
        """The main flag, then each phase's companion flags, each once."""
        names = [self.flag, *(name for phase in self.phases for name in phase.flags)]
        return list(dict.fromkeys(names))

    @property
    def uses_sandbox(self) -> bool:
        """Whether the plan runs against the local sandbox (no targets given)."""
        return self.targets is None
