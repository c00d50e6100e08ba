"""Clients for a plan's targets, opened lazily and closed together."""

from __future__ import annotations

from functools import cached_property

from pymongo import MongoClient, uri_parser
from pymongo.database import Database

from rollout.adapters.bucket import Bucket
from rollout.adapters.fences import COLLECTION as FENCES
from rollout.adapters.fences import FenceStore
from rollout.adapters.flagd import FlagdConfigMap, FlagdFile
from rollout.adapters.flags import FlagProvider, FlagStore
from rollout.adapters.kubernetes import Cluster
from rollout.adapters.kubernetes_client import api_client
from rollout.adapters.mongo import Document, connect
from rollout.adapters.prometheus import PrometheusClient
from rollout.adapters.run_state import COLLECTION as RUNS
from rollout.adapters.run_state import RELEASES, ReleaseStore, RunStateStore
from rollout.adapters.s3 import Encryption
from rollout.adapters.s3 import connect as connect_s3
from rollout.adapters.service import ServiceClient
from rollout.adapters.unleash import UnleashFlags
from rollout.errors import PermanentError
from rollout.plan.model import Targets
from rollout.plan.secrets import SecretResolver, env_resolver, resolve


class Clients:
    """Connections to the systems named in ``targets``, with secrets resolved on first use."""

    def __init__(self, targets: Targets, resolver: SecretResolver = env_resolver) -> None:
        self.targets = targets
        self._resolve = resolver

    def secret(self, template: str) -> str:
        """Resolve the references inside ``template``."""
        return resolve(template, self._resolve)

    @cached_property
    def mongo(self) -> MongoClient[Document]:
        """The MongoDB client."""
        return connect(self.secret(self.targets.mongodb.uri))

    @property
    def mongo_hosts(self) -> tuple[str, ...]:
        """``host:port`` of the MongoDB servers, without credentials (for manifests and reports)."""
        nodes = uri_parser.parse_uri(self.secret(self.targets.mongodb.uri))["nodelist"]
        return tuple(f"{host}:{port}" for host, port in nodes)

    @property
    def db(self) -> Database[Document]:
        """The application database."""
        return self.mongo[self.targets.mongodb.database]

    @property
    def flag_db(self) -> Database[Document]:
        """The database holding the flags and the rollout state."""
        return self.mongo[self.targets.flag_store.database or self.targets.mongodb.database]

    @cached_property
    def flags(self) -> FlagProvider:
        """Where the flags live: Unleash, a flagd file, or (by default) the MongoDB flag store."""
        unleash, flagd = self.targets.unleash, self.targets.flagd
        if unleash is not None:
            return UnleashFlags(
                self.secret(unleash.url),
                self.secret(unleash.api_token),
                unleash.project,
                unleash.environment,
                FenceStore(self.flag_db[FENCES], "unleash"),
                store_field=unleash.store_field,
                timeout=unleash.timeout.total_seconds(),
            )
        if flagd is not None and flagd.configmap is not None:
            if self.cluster is None:
                raise PermanentError(
                    "targets.flagd.configmap needs targets.kubernetes, the cluster holding it"
                )
            return FlagdConfigMap(self.cluster, flagd.configmap, flagd.key, store_field=flagd.store_field)
        if flagd is not None and flagd.path is not None:
            return FlagdFile(flagd.path, store_field=flagd.store_field)
        return FlagStore(self.flag_db[self.targets.flag_store.collection])

    @cached_property
    def runs(self) -> RunStateStore:
        """Persisted rollout state, beside the flags."""
        return RunStateStore(self.flag_db[RUNS])

    @cached_property
    def releases(self) -> ReleaseStore:
        """The plans' stable releases, beside the flags."""
        return ReleaseStore(self.flag_db[RELEASES])

    @cached_property
    def cluster(self) -> Cluster | None:
        """The Kubernetes namespace of the service, or None when the plan names no cluster."""
        target = self.targets.kubernetes
        if target is None:
            return None
        token = self.secret(target.token) if target.token else None
        ca_data = self.secret(target.ca_data) if target.ca_data else None
        return Cluster(api_client(target, token, ca_data), target.namespace)

    @cached_property
    def service(self) -> ServiceClient:
        """The service, with the plan's headers resolved."""
        target = self.targets.service
        return ServiceClient(target, self.service_headers, base_url=self.secret(target.base_url))

    @property
    def service_headers(self) -> dict[str, str]:
        """The plan's service headers with their secrets resolved."""
        return {name: self.secret(value) for name, value in self.targets.service.headers.items()}

    @cached_property
    def bucket(self) -> Bucket:
        """The backup bucket, with the plan's server-side encryption."""
        target = self.targets.s3
        if target is None:
            raise PermanentError("backups need a bucket: add targets.s3 to the plan")
        client = connect_s3(
            region=target.region,
            endpoint_url=target.endpoint_url,
            access_key_id=self.secret(target.access_key_id) if target.access_key_id else None,
            secret_access_key=self.secret(target.secret_access_key) if target.secret_access_key else None,
        )
        return Bucket(client, target.bucket, Encryption(target.sse, target.kms_key_id))

    @cached_property
    def prometheus(self) -> PrometheusClient:
        """The Prometheus client."""
        target = self.targets.prometheus
        token = self.secret(target.bearer_token) if target.bearer_token else None
        url = self.secret(target.url)
        return PrometheusClient(url, bearer_token=token, timeout=target.timeout.total_seconds())

    def close(self) -> None:
        """Close whatever was opened."""
        if "mongo" in self.__dict__:
            self.mongo.close()
        if "prometheus" in self.__dict__:
            self.prometheus.close()
        if "flags" in self.__dict__:
            self.flags.close()
        if "service" in self.__dict__:
            self.service.close()
        if self.__dict__.get("cluster") is not None:
            self.cluster.close()  # type: ignore[union-attr]

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
