import json

import pytest

from edgewise.pipeline import run_recipe
from edgewise.recipe import Recipe


@pytest.mark.slow
def test_tensorrt_missing_is_said_once_per_run_and_each_stage_says_when_it_is_done(tmp_path, capsys, digits_mlp,
                                                                                    monkeypatch):
    from edgewise import export

    monkeypatch.setattr(export, "tensorrt_status", lambda: (False, "no tensorrt in this test"))
    entry = {"zoo": "digits-mlp", "export": {"tensorrt": {"precision": "fp16"}}}
    recipe = Recipe.model_validate({"name": "trt", "report": False,
                                    "models": [{**entry, "name": "first"}, {**entry, "name": "second"}]})
    run = run_recipe(recipe, tmp_path)
    err = capsys.readouterr().err
    assert err.count("TensorRT unavailable here (no tensorrt in this test)") == 1
    for model in ("first", "second"):
        assert f"  {model} export: done in " in err and f"  {model} train: " in err
    manifest = json.loads((run.root / "manifest.json").read_text())
    commands = [s["metrics"]["tensorrt"]["trtexec"] for s in manifest["stages"] if s["id"].endswith("/export")]
    assert len(commands) == 2 and all(c[0] == "trtexec" for c in commands)


@pytest.mark.slow
def test_the_export_stage_writes_a_4_bit_file_s_plain_variant(tmp_path, digits_mlp):
    recipe = Recipe.model_validate({"name": "plain", "report": False, "models": [{
        "zoo": "digits-mlp", "name": "mlp", "quantize": {"method": "uniform", "rounding": "nearest"}, "export": {}}]})
    run = run_recipe(recipe, tmp_path)
    manifest = json.loads((run.root / "manifest.json").read_text())
    (stage,) = [s for s in manifest["stages"] if s["id"].endswith("/export")]
    variant = stage["metrics"]["model.onnx"]["plain_variant"]
    assert "plain_variant" not in stage["metrics"]["model-float32.onnx"]  # a float file: every session loads it alike
    (path,) = run.root.rglob("model.plain.onnx")
    assert variant == {"file": "model.plain.onnx", "bytes": path.stat().st_size}
    assert any(o["path"].endswith("model.plain.onnx") for o in stage["outputs"])
