"""The example recipes: each validates, and the two that bring their own model run end to end from a scratch copy."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgewise.pipeline import run_recipe
from edgewise.recipe import load_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RECIPES = sorted(p for p in EXAMPLES.rglob("*.yaml"))


def test_there_is_an_example_for_each_way_in():
    names = {p.relative_to(EXAMPLES).as_posix() for p in RECIPES}
    assert {"own-torch-model/recipe.yaml", "own-onnx-model/recipe.yaml", "expert-study.yaml",
            "jetson-study/recipe.yaml", "sweep.yaml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_every_example_recipe_validates(recipe):
    parsed = load_recipe(recipe)
    assert parsed.models
    if parsed.sweep:
        assert len(parsed.configurations()) >= 12


def copy_example(name, tmp_path, **changes):
    """The example's recipe in a scratch folder (its inputs are prepared there), with `changes` to its model."""
    folder = tmp_path / name
    folder.mkdir()
    body = yaml.safe_load((EXAMPLES / name / "recipe.yaml").read_text())
    for key, value in changes.items():
        body["models"][0][key] = value
    (folder / "recipe.yaml").write_text(yaml.safe_dump(body))
    return folder


def prepare(name, folder, *args):
    done = subprocess.run([sys.executable, str(EXAMPLES / name / "prepare.py"), "--out", str(folder), *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_own_torch_model_and_image_folder(tmp_path, unrecorded):
    folder = copy_example("own-torch-model", tmp_path,
                          prune={"criterion": "lrp", "rate": 0.4, "scope": "layer", "finetune": {"epochs": 1}},
                          quantize={"method": "ecqx", "bits": 4, "lambda": 0.05, "train": {"epochs": 1}},
                          bench={"targets": ["x86-host", "jetson-orin-nano"], "duration_s": 0.1, "iterations": 20})
    prepare("own-torch-model", folder, "--epochs", "3")
    result = run_recipe(load_recipe(folder / "recipe.yaml"), tmp_path / "runs")
    stages = [r["stage"] for r in result.rows]
    assert stages[0] == "float32" and stages[-1].endswith("+ NNCodec")
    assert result.rows[1]["macs"] < result.rows[0]["macs"], "the user's convolutions were pruned"
    bundle = json.loads((result.root / "my-cnn" / "deploy" / "bundle" / "manifest.json").read_text())
    assert bundle["preprocessing"]["input_shape"] == [1, 16, 16]
    assert {r["target"] for r in result.bench} == {"x86-host", "jetson-orin-nano"}
    assert not unrecorded(result.root), "every file a stage writes is a recorded output"
    kinds = [v["kind"] for v in result.versions["my-cnn"]]
    assert kinds == ["float32", "pruned", "folded", "quantized", "bitstream"]
    assert {b["version"] for b in result.bench} == {"float32", "pruned", "quantized"}


@pytest.mark.slow
def test_own_onnx_model_is_scored_emulated_and_benchmarked(tmp_path, unrecorded):
    folder = copy_example("own-onnx-model", tmp_path, bench={"targets": ["x86-host", "fantastic4-asic"],
                                                             "duration_s": 0.1, "iterations": 20})
    prepare("own-onnx-model", folder)
    result = run_recipe(load_recipe(folder / "recipe.yaml"), tmp_path / "runs")
    assert [r["stage"] for r in result.rows] == ["given ONNX"] and result.rows[0]["score"] > 0.9
    given = next(v for v in result.versions["my-mlp"] if v["kind"] == "given")  # the ledger says where its files are
    emulated = json.loads((result.root / given["files"]["emulation"]).read_text())
    assert abs(emulated["kernel_accuracy"] - result.rows[0]["score"]) < 0.05
    kinds = {r["target"]: r["energy"]["kind"] for r in result.bench}
    assert kinds == {"x86-host": "unavailable", "fantastic4-asic": "emulated"}
    export = json.loads((result.root / "manifest.json").read_text())["stages"]
    trt = next(s for s in export if s["id"] == "my-mlp/export")["metrics"]["tensorrt"]
    assert not trt["available"] and "--fp16" in trt["trtexec"] and any("x:1x1x8x8" in a for a in trt["trtexec"])
    assert not unrecorded(result.root)
