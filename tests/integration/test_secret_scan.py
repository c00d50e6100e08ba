"""A rollout and its rollback run with a known secret; nothing they print or write holds it."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from pymongo import MongoClient

from rollout.adapters.flags import FlagStore
from rollout.audience.flag_state import FlagChange
from rollout.sandbox.stack import KEY_ENV, SECRET_ENV, SandboxInfo
from tests.plans import PlanFiles, target_sections
from tests.prefect_server import ROOT, prefect_env

pytestmark = pytest.mark.integration

SECRET = "tok_Zq81-known-secret-4711"
ENV = "ROLLOUT_SCAN_TOKEN"


def secret_plan(plan_file: PlanFiles, sandbox: SandboxInfo) -> Path:
    """A plan whose every credential is the same secret, in every place a secret can go."""
    targets = target_sections(sandbox.targets())
    targets["prometheus"]["bearer_token"] = f"${{env:{ENV}}}"
    targets["service"]["headers"] = {"X-Api-Key": f"${{env:{ENV}}}"}
    targets["mongodb"]["uri"] += f"&appname=${{env:{ENV}}}"
    # Credentials in the service's URL: every request, log line and error that names the URL.
    targets["service"]["base_url"] = targets["service"]["base_url"].replace("://", f"://scan:${{env:{ENV}}}@")
    window = {"interval": "1s", "count": 2, "initial_delay": "3s", "gates": ["errors"]}
    return plan_file(
        "secret-scan",
        file="plan.yaml",
        targets=targets,
        backup=None,
        gates={"errors": {"sli": "error_ratio", "max": 0.05, "rate_window": "10s"}},
        phases=[{"name": "ramp", "ramp": [50], "window": window}],
        # The purge names its full URL in the report: with the credentials in it, unless masked.
        rollback={"watch": {"interval": "1s", "duration": "1s"}, "cache": {"purge_url": "/cache/purge"}},
    )


def every_file_under(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_known_secret_appears_nowhere_a_rollout_and_its_rollback_wrote_or_printed(
    sandbox: SandboxInfo, tmp_path: Path, plan_file: PlanFiles
) -> None:
    plan = secret_plan(plan_file, sandbox)
    assert SECRET not in plan.read_text()
    home, reports = tmp_path / "prefect", tmp_path / "reports"
    env = prefect_env(home, {ENV: SECRET, "ROLLOUT_REPORTS_DIR": str(reports)})
    httpx.put(f"{sandbox.service_url}/fault", json={"variant": "candidate", "error_rate": 1.0})
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    try:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "rollout"), "run", str(plan), "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
        result = json.loads(done.stdout)
        assert result["status"] == "rolled_back" and result["rollback"]["report"]

        written = {"stdout": done.stdout.encode(), "stderr": done.stderr.encode()}
        written |= every_file_under(home) | every_file_under(reports)
        db = client[sandbox.database]
        for collection in ("rollout_runs", "feature_flags", "rollout_releases"):
            written[f"mongodb:{collection}"] = json.dumps(list(db[collection].find()), default=str).encode()
        s3 = boto3.client(
            "s3",
            endpoint_url=sandbox.s3_endpoint,
            aws_access_key_id=os.environ[KEY_ENV],
            aws_secret_access_key=os.environ[SECRET_ENV],
            region_name="us-east-1",
        )
        for item in s3.list_objects_v2(Bucket=sandbox.bucket).get("Contents", []):
            if item["Key"].endswith("manifest.json"):
                written[f"s3:{item['Key']}"] = s3.get_object(Bucket=sandbox.bucket, Key=item["Key"])[
                    "Body"
                ].read()
        assert any(name.endswith("prefect.db") for name in written), "the Prefect database was not scanned"
        assert any(name.startswith(str(reports)) and name.endswith(".md") for name in written)
        leaks = [name for name, data in written.items() if SECRET.encode() in data]
        assert leaks == []
    finally:
        httpx.delete(f"{sandbox.service_url}/fault")
        FlagStore(client[sandbox.database]["feature_flags"]).set(
            "USE_UNIFIED_ORDERS", FlagChange(enabled=False, percentage=0, users=(), stores=())
        )
        client.close()
