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

