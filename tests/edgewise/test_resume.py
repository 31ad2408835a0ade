"""Resumable runs: unchanged stages are reused, changed ones and what follows them rerun, interrupted runs resume."""

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from edgewise import compress
from edgewise.board.errors import UserError
from edgewise.force import force_policy
from edgewise.pipeline import run_recipe
from edgewise.recipe import Recipe

RECIPE = {"name": "resume", "report": False, "models": [{
    "zoo": "digits-mlp",
    "prune": {"criterion": "l1", "rate": 0.3},
    "quantize": {"method": "ecq", "bits": 4, "lambda": 0.1},
    "encode": True,
    "export": {},
}]}


def recipe(**quantize):
    body = json.loads(json.dumps(RECIPE))
    body["models"][0]["quantize"].update(quantize)
    return Recipe.model_validate(body)


def stages(root):
    manifest = json.loads((root / "manifest.json").read_text())
    return {s["id"].split("/")[-1]: s for s in manifest["stages"]}


def reused(root):
    return {name for name, s in stages(root).items() if s.get("reused")}


ALL = {"train", "evaluate", "prune", "quantize", "encode", "export"}


@pytest.mark.slow
def test_reuse_change_force_and_tampering_in_one_directory(tmp_path, digits_mlp):
    first = run_recipe(recipe(), tmp_path)
    assert reused(first.root) == set()
    # every exported version is also scored as it ships, in ONNX Runtime; the bitstream as the model it decodes to
    exported = [r for r in first.rows if r.get("onnx_score") is not None]
    assert len(exported) == 4 and all(abs(r["score"] - r["onnx_score"]) < 0.02 for r in exported)
    assert exported[-1]["kind"] == "bitstream" and exported[-1]["onnx_score"] == exported[-2]["onnx_score"]
    section = next(s for s in first.sections if s.title.startswith("ONNX export"))
    assert section.columns[-1] == "score (ONNX Runtime)" and all(row[-1] for row in section.rows)

    second = run_recipe(recipe(), tmp_path)
    assert reused(second.root) == ALL, "a second run reuses every stage"
    assert second.rows == first.rows

    changed = run_recipe(recipe(**{"lambda": 0.3}), tmp_path)
    assert reused(changed.root) == {"train", "evaluate", "prune"}, "a changed parameter reruns what follows"
    assert stages(changed.root)["quantize"]["params"]["lambda"] == 0.3

    forced = run_recipe(recipe(**{"lambda": 0.3}), tmp_path, force=["digits-mlp/encode"])
    assert reused(forced.root) == {"train", "evaluate", "prune", "quantize"}

    pruned = first.root / "digits-mlp" / "prune" / "prune.json"
    original = pruned.read_text()
    pruned.write_text(original + " ")
    tampered = run_recipe(recipe(**{"lambda": 0.3}), tmp_path)
    # a changed output file is recomputed, not trusted; the recomputed files are byte for byte the first ones, so
    # the stages reading them stay valid and are reused
    assert "prune" not in reused(tampered.root) and pruned.read_text() == original
    assert reused(tampered.root) == ALL - {"prune"}


@pytest.mark.slow
def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch, digits_mlp):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(compress, "encode", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_recipe(recipe(), tmp_path)
    root = tmp_path / "resume"
    assert stages(root)["encode"]["status"] == "failed"
    assert not list(root.rglob("*.tmp*")), "no half-written artifact is left behind"
    resumed = run_recipe(recipe(), tmp_path)
    assert reused(resumed.root) == {"train", "evaluate", "prune", "quantize"}
    assert stages(root)["encode"]["status"] == "ok"


def test_force_names_are_checked():
    policy = force_policy(["prune"], ["a", "b"])  # stages as the stage table names them
    assert not policy("train", "a") and not policy("train", "b")
    assert policy("prune", "a") and policy("experts", "b") and policy("bench", "a")
    only_b = force_policy(["b/export"], ["a", "b"])
    assert only_b("deploy", "b") and not only_b("deploy", "a") and not only_b("quantize", "b")
    with pytest.raises(UserError, match="unknown stage 'pune'"):
        force_policy(["pune"], ["a"])
    with pytest.raises(UserError, match="no model 'c'"):
        force_policy(["c/prune"], ["a"])


@pytest.mark.slow
def test_a_killed_run_leaves_its_finished_stages_for_the_next(tmp_path, digits_mlp):
    """SIGKILL (no cleanup at all) after the prune stage: the next run reuses what was finished."""
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(yaml.safe_dump(RECIPE))
    root = tmp_path / "resume"
    run = subprocess.Popen([sys.executable, "-m", "edgewise", "run", str(recipe_file), "--out", str(tmp_path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while "prune" not in finished(root) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
    finally:
        run.wait()
    assert {"train", "evaluate", "prune"} <= finished(root)
    resumed = run_recipe(Recipe.model_validate(RECIPE), tmp_path)
    assert {"train", "evaluate", "prune"} <= reused(resumed.root)
    assert stages(resumed.root)["encode"]["status"] == "ok"


def finished(root):
    try:
        return {name for name, s in stages(root).items() if s["status"] == "ok"}
    except (FileNotFoundError, json.JSONDecodeError):
        return set()
