"""Every user-caused failure: a one-line error with the fix, exit code 2 (1 for internal errors), nothing damaged."""

import errno
import os

import numpy as np
import pytest
import yaml

from edgewise.core.rundir import RunDirectory


def assert_user_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    assert len(lines) - start <= 2 and "Traceback" not in result.stderr  # the error and its fix, nothing more
    for word in words:
        assert word in result.stderr


def _recipe(tmp_path, models, name="edge"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "models": models}))
    return path


def test_unknown_model_name(tmp_path, edgewise):
    assert_user_error(edgewise("prune", "digits-xl", "-o", str(tmp_path / "p.pt")), "unknown model 'digits-xl'")


def test_missing_data_folder(tmp_path, edgewise):
    recipe = _recipe(tmp_path, [{"name": "m", "arch": "lenet", "data": {"name": "folder", "path": "/no/such"}}])
    assert_user_error(edgewise("run", str(recipe), "--out", str(tmp_path / "runs")), "does not exist")


def test_wrong_input_shape(tmp_path, edgewise):
    np.savez(tmp_path / "four.npz", x=np.random.rand(20, 4, 8, 8).astype(np.float32), y=np.arange(20) % 2)
    recipe = _recipe(tmp_path, [{"name": "m", "arch": "torchvision:resnet18",
                                 "data": {"name": "npz", "path": str(tmp_path / "four.npz")}}])
    assert_user_error(edgewise("run", str(recipe), "--out", str(tmp_path / "runs")), "3-channel", "4 channels")


@pytest.mark.slow
def test_a_layer_type_the_stage_does_not_support(tmp_path, digits_cnn, edgewise):
    assert edgewise("quantize", "digits-cnn", "-o", str(tmp_path / "q.pt"), "--method", "uniform").returncode == 0
    # a convolution's records lack its strides and padding: the exported file has them
    assert_user_error(edgewise("emulate", str(tmp_path / "q.npz")), "whose strides and padding the records do not hold",
                      "edgewise emulate model.onnx")


def test_rate_and_lambda_out_of_range(tmp_path, edgewise):
    assert_user_error(edgewise("prune", "digits-mlp", "-o", str(tmp_path / "p.pt"), "--rate", "-0.5"), "--rate")
    assert_user_error(edgewise("quantize", "digits-mlp", "-o", str(tmp_path / "q.pt"), "--lambda", "-1"),
                      "--lambda")


def test_corrupted_onnx_file(tmp_path, edgewise):
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage" * 10)
    assert_user_error(edgewise("bench", str(tmp_path / "broken.onnx")), "cannot read ONNX file", "damaged")


def test_a_target_that_is_not_available_here(tmp_path, edgewise):
    import torch

    from edgewise import export
    from edgewise.zoo.models import build_model

    export.to_onnx(build_model("mlp", (1, 8, 8), 10, hidden=[16]).eval(), torch.rand(2, 1, 8, 8),
                   tmp_path / "m.onnx")
    assert_user_error(edgewise("bench", str(tmp_path / "m.onnx"), "--batch", "1", "--target", "nvidia-gpu"),
                      "target nvidia-gpu is not available here")


def test_two_runs_in_one_directory_at_once(tmp_path, edgewise_process):
    recipe = _recipe(tmp_path, [{"zoo": "digits-mlp"}], name="busy")
    with RunDirectory.create(tmp_path / "runs" / "busy", "busy", {}):
        result = edgewise_process("run", str(recipe), "--out", str(tmp_path / "runs"))
    assert_user_error(result, "is in use by another run", f"pid {os.getpid()}")
    # the lock is released with its holder: the directory can be used again
    with RunDirectory.create(tmp_path / "runs" / "busy", "busy", {}):
        pass


@pytest.mark.slow
def test_full_disk_and_unwritable_directory_leave_earlier_artifacts_intact(tmp_path, monkeypatch, digits_mlp):
    import edgewise.base.atomic
    from edgewise.board.errors import UserError
    from edgewise.pipeline import run_recipe
    from edgewise.recipe import parse_recipe

    recipe = parse_recipe({"name": "disk", "models": [{"zoo": "digits-mlp"}]})
    first = run_recipe(recipe, out=tmp_path)
    report_before = (first.root / "report.html").read_bytes()
    real_replace = os.replace

    def full_disk(src, dst):
        if str(dst).endswith("report.html"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(edgewise.base.atomic.os, "replace", full_disk)
    with pytest.raises(UserError, match="no space left"):
        run_recipe(recipe, out=tmp_path)
    monkeypatch.setattr(edgewise.base.atomic.os, "replace", real_replace)
    # the report that could not be written is the previous one, whole; the stages before it are complete
    assert (first.root / "report.html").read_bytes() == report_before
    from edgewise.core.modelio import load_model

    load_model(first.root / "digits-mlp" / "train" / "model.pt")
    assert not [p for p in first.root.rglob("*.tmp")]
    import json

    manifest = json.loads((first.root / "manifest.json").read_text())
    assert manifest["stages"][-1]["id"] == "report" and manifest["stages"][-1]["status"] == "failed"

    import builtins

    real_open = builtins.open

    def read_only(path, mode="r", *args, **kwargs):
        if str(path).endswith(".edgewise.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only)
    with pytest.raises(UserError, match="permission denied"):
        run_recipe(recipe, out=tmp_path)


@pytest.mark.parametrize("name", ["../escaped", "/tmp/edgewise-absolute-run", "a/b", "..", "x" * 300, "-dash"])
def test_a_run_name_cannot_leave_the_out_folder(tmp_path, edgewise, name):
    out = tmp_path / "runs"
    result = edgewise("run", "--out", str(out), "--name", name)
    assert result.returncode == 2 and "is not a plain directory name" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.stderr
    assert not out.exists() and not (tmp_path / "escaped").exists()
    assert not os.path.exists("/tmp/edgewise-absolute-run")


def _bad_npz(path, kind):
    x = np.random.default_rng(0).random((40, 1, 8, 8)).astype(np.float32)
    y = np.arange(40) % 4
    if kind == "empty":
        np.savez(path, x=x[:0], y=y[:0])
    elif kind == "nan":
        x[3, 0, 2, 2] = np.nan
        np.savez(path, x=x, y=y)
    elif kind == "float labels":
        np.savez(path, x=x, y=y + 0.5)
    else:  # truncated
        np.savez(path, x=x, y=y)
        path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(("kind", "message"), [("empty", "x holds no samples"), ("nan", "NaN or infinite"),
                                               ("float labels", "not class indices"),
                                               ("truncated", "damaged or truncated")])
def test_bad_npz_data_is_one_line(tmp_path, edgewise, kind, message):
    _bad_npz(tmp_path / "d.npz", kind)
    result = edgewise("prune", "digits-mlp", "-o", str(tmp_path / "p.pt"), "--data", str(tmp_path / "d.npz"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "p.pt").exists()


def test_bad_files_and_values_the_commands_meet(tmp_path, edgewise):
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes(b"\xff\xfe\x00bad")
    result = edgewise("recipe", "check", str(recipe))
    assert result.returncode == 2 and "is not UTF-8 text" in result.stderr
    recipe.write_text(yaml.safe_dump({"models": [{"zoo": "digits-mlp", "seed": 10**30}]}))
    result = edgewise("recipe", "check", str(recipe))
    assert result.returncode == 2 and "models.0.seed" in result.stderr
    result = edgewise("quantize", "digits-mlp", "-o", str(tmp_path / "q.pt"), "--epochs", "-1")
    assert result.returncode == 2 and "--epochs: -1 is negative" in result.stderr
    (tmp_path / "existing").mkdir()
    result = edgewise("export", "digits-mlp", "-o", str(tmp_path / "existing"))
    assert result.returncode == 2 and "is a directory, where a file is to be written" in result.stderr
    (tmp_path / "b.tar.gz").write_bytes(b"not a tar")
    result = edgewise("bundle", "verify", str(tmp_path / "b.tar.gz"))
    assert result.returncode == 2 and "cannot be unpacked as a bundle" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_folder_with_one_image_per_class_is_too_small_to_split(tmp_path, edgewise):
    from PIL import Image

    for name in ("cat", "dog"):
        (tmp_path / "images" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / name / "0.png")
    recipe = _recipe(tmp_path, [{"name": "m", "arch": "lenet", "data": {"name": "folder", "path": str(
        tmp_path / "images"), "size": [8, 8], "grayscale": True}}])
    assert_user_error(edgewise("run", str(recipe), "--out", str(tmp_path / "runs")),
                      "1 sample(s) in its smallest class", "at least 5 samples per class")
