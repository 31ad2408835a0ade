"""Sweeps: expansion of the axes, local worker processes and Ray tasks giving the same results."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edgewise.board.errors import RecipeError
from edgewise.recipe import parse_recipe
from edgewise.sweep import run_sweep

BASE = {"name": "sw", "report": True, "models": [{
    "zoo": "digits-mlp",
    "prune": {"criterion": "l1", "rate": 0.3},
    "quantize": {"method": "ecq", "bits": 4, "lambda": 0.1},
    "encode": True,
}]}


def sweep_recipe(sweep):
    return parse_recipe({**BASE, "sweep": sweep})


def test_every_combination_becomes_a_recipe_of_its_own():
    recipe = sweep_recipe({"prune.criterion": ["lrp", "l1", "taylor"], "prune.rate": [0.3, 0.6],
                           "quantize.lambda": [0.02, 0.1], "quantize.bits": [4]})
    configs = recipe.configurations()
    assert len(configs) == 12 and len({c.name for c in configs}) == 12
    assert configs[0].name == "01_criterion-lrp_rate-0.3_lambda-0.02_bits-4"
    last = configs[-1].recipe.models[0]
    assert (last.prune.criterion, last.prune.rate, last.quantize.lam, last.quantize.bits) == ("taylor", 0.6, 0.1, 4)
    assert not configs[-1].recipe.sweep and configs[-1].recipe.name == configs[-1].name


def test_a_recipe_without_a_sweep_is_its_own_single_configuration():
    recipe = parse_recipe(BASE)
    assert [(c.name, c.overrides) for c in recipe.configurations()] == [("sw", {})]


@pytest.mark.parametrize(("sweep", "message"), [
    ({"prune.rate": [0.3, 1.5]}, "prune.rate"),
    ({"curves.rates": [[0.1]]}, "no model has a curves section"),
    ({"rate": [0.1]}, "dotted path"),
    ({"prune.rate": []}, "no values"),
    ({"quantize.bits": [4, 99]}, "quantize.bits"),
])
def test_bad_axes_and_values_name_the_configuration(sweep, message):
    with pytest.raises(RecipeError, match=message):
        sweep_recipe(sweep)


@pytest.fixture
def ray_cluster():
    """A local Ray instance with 2 CPUs, started as a user would (`ray start --head`), stopped afterwards."""
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.exists():
        pytest.fail("the ray extra is not installed: make test installs it (pip install -e '.[dev,ray]')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's unix sockets live under it (108-byte limit)
    started = subprocess.run([str(ray_cli), "start", "--head", "--num-cpus", "2", "--port", str(port),
                              "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp],
                             capture_output=True, text=True, env=env, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def scores(result):
    return {c["name"]: [(r["stage"], r["score"], r["size_bytes"], r["params"], r["macs"]) for r in c["rows"]]
            for c in result.configurations}


@pytest.mark.slow
def test_local_processes_and_ray_tasks_give_identical_results(tmp_path, digits_mlp, ray_cluster):
    recipe = sweep_recipe({"quantize.lambda": [0.05, 0.2]})
    local = run_sweep(recipe, tmp_path / "local", jobs=2, threads=1)
    assert len(local.configurations) == 2 and not local.failed
    for config in local.configurations:
        assert (local.root / "configs" / config["name"] / "manifest.json").is_file()
    compared = json.loads((local.root / "sweep.json").read_text())["compared"]
    assert len(compared) == 2 and any(r["pareto"] for r in compared)
    assert "Sweep: 2 configurations of digits-mlp" in (local.root / "report.md").read_text()

    remote = run_sweep(recipe, tmp_path / "ray", ray_address=ray_cluster, threads=1)
    assert scores(remote) == scores(local)
    manifest = json.loads((remote.root / "configs" / "01_lambda-0.05" / "manifest.json").read_text())
    assert {s["id"] for s in manifest["stages"]} >= {"digits-mlp/prune", "digits-mlp/encode", "report"}

    again = run_sweep(recipe, tmp_path / "ray", ray_address=ray_cluster, threads=1)
    manifest = json.loads((again.root / "configs" / "01_lambda-0.05" / "manifest.json").read_text())
    assert all(s.get("reused") for s in manifest["stages"] if s["id"] != "report"), "Ray tasks resume too"
