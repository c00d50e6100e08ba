import importlib
import os
import subprocess
import sys
from pathlib import Path

import yaml
from prefect import Flow

ROOT = Path(__file__).resolve().parents[2]


def test_every_deployment_points_at_a_flow_and_an_existing_plan() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert config["deployments"]
    for deployment in config["deployments"]:
        path, _, name = deployment["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert isinstance(getattr(module, name), Flow), deployment["name"]
        plan = deployment.get("parameters", {}).get("plan_path")
        if plan:
            assert (ROOT / plan).is_file(), f"{deployment['name']}: {plan} is missing"


def test_every_entrypoint_loads_the_way_a_worker_loads_it(tmp_path: Path) -> None:
    # A worker loads the entrypoint as a script, with the script's folder first on sys.path:
    # a flow file named like one of our packages would hide that package.
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    entrypoints = sorted({d["entrypoint"] for d in config["deployments"]})
    script = (
        "import sys; from prefect.flows import load_flow_from_entrypoint\n"
        "for entrypoint in sys.argv[1:]:\n"
        "    print(load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False).name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *entrypoints],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(done.stdout.split()) == len(entrypoints)
