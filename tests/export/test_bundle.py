import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgewise import compress, export
from edgewise.export.errors import ExportError
from edgewise.zoo.models import build_model


@pytest.fixture
def onnx_model(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10, hidden=[64]).eval()
    q = compress.quantize(model, "ecq", 4, lam=0.1)
    probe = torch.rand(4, 1, 8, 8)
    f = export.to_onnx(q.model, probe[:2], tmp_path / "m.onnx", q.records)
    with torch.no_grad():
        expected = q.model(probe).numpy()
    return f.path, probe.numpy(), expected


def _bundle(onnx_model, out, **kwargs):
    path, probe, expected = onnx_model
    command = export.trtexec_command("model.onnx", "model.engine", "x", (1, 8, 8), "int4")
    return export.bundle(path, out, name="t", probe_input=probe, probe_output=expected, trtexec=command, **kwargs)


def test_bundle_verifies_and_its_runner_works(onnx_model, tmp_path):
    path = _bundle(onnx_model, tmp_path / "b")
    board = export.bundles.board_files()  # the board package whole, file by file
    assert {"edgewise_board/runner.py", "edgewise_board/energy/window.py", "edgewise_board/errors.py"} <= set(board)
    # model, probe in/out, run.py, README and the board package
    assert export.verify_bundle(path)["files"] == 5 + len(board)
    assert all((path / name).read_bytes() == source.read_bytes() for name, source in board.items())
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["inputs"][0]["name"] == "x" and manifest["trtexec"][0] == "trtexec"
    # as on a board: no Edgewise to import (numpy and onnxruntime only), bytecode written where allowed
    no_kit = tmp_path / "no-kit/edgewise"
    no_kit.mkdir(parents=True)
    (no_kit / "__init__.py").write_text("raise ImportError('Edgewise is not installed on this board')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(no_kit.parent)
    completed = subprocess.run([sys.executable, "run.py", "--backend", "onnxruntime", "--duration", "0.2",
                                "--iterations", "20"], cwd=path, capture_output=True, text=True, check=False, env=env)
    assert completed.returncode == 0, completed.stderr
    result = json.loads((path / "result.json").read_text())
    runs = result["latency"]["iterations"]
    assert result["probe_ok"] and result["kind"] == "measured" and runs >= 20  # a count, not a speed
    assert result["memory"]["kind"] == "measured" and result["memory"]["peak_rss_bytes"] > 0
    # this test machine has no power sensor: energy says so and why, and gives no number
    assert result["energy"] == {"kind": "unavailable", "reason": result["energy"]["reason"]}
    assert "no INA3221" in result["energy"]["reason"] and "no powercap" in result["energy"]["reason"]
    assert result["board"]["power_mode"]["name"] is None  # no nvpmodel here
    assert not list(path.rglob("__pycache__")), "running the bundle leaves its files as shipped"
    assert export.verify_bundle(path)  # result.json is allowed beside the bundle's files


def test_a_model_fixed_at_batch_one_is_probed_in_slices_on_the_host_and_the_board(tmp_path):
    """A file exported with a static batch of 1 (as a vendor's often is) takes the 4-sample probe one at a time."""
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10, hidden=[16]).eval()
    probe = torch.rand(4, 1, 8, 8)
    file = export.to_onnx(model, probe[:1], tmp_path / "m.onnx", dynamic_batch=False)
    with torch.no_grad():
        expected = model(probe).numpy()
    path = export.bundle(file.path, tmp_path / "b", name="t", probe_input=probe.numpy(), probe_output=expected,
                         trtexec=None)
    assert export.verify_bundle(path)["probe_rel_diff"] < 1e-5
    completed = subprocess.run([sys.executable, "run.py", "--backend", "onnxruntime", "--duration", "0",
                                "--iterations", "5", "--no-energy"], cwd=path, capture_output=True, text=True,
                               check=False)
    assert completed.returncode == 0, completed.stderr
    assert json.loads((path / "result.json").read_text())["probe_ok"]


@pytest.mark.parametrize("victim", ["model.onnx", "probe_output.npy", "run.py", "README.txt",
                                    "edgewise_board/energy/rails.py"])
def test_tampering_with_any_file_is_detected(onnx_model, tmp_path, victim):
    path = _bundle(onnx_model, tmp_path / "b")
    data = bytearray((path / victim).read_bytes())
    data[-1] ^= 0x01
    (path / victim).write_bytes(bytes(data))
    with pytest.raises(ExportError, match=f"changed or missing: {victim}"):
        export.verify_bundle(path)
    if victim != "run.py":  # the runner checks the other files before it uses them
        completed = subprocess.run([sys.executable, str(path / "run.py")], capture_output=True, text=True, check=False)
        assert completed.returncode == 2 and victim in completed.stderr


def test_extra_files_and_tarballs(onnx_model, tmp_path):
    path = _bundle(onnx_model, tmp_path / "b")
    (path / "sneaky.so").write_bytes(b"x")
    with pytest.raises(ExportError, match=r"not in the manifest: sneaky\.so"):
        export.verify_bundle(path)
    archive = _bundle(onnx_model, tmp_path / "t", tar=True)
    (path / "sneaky.so").unlink()
    assert archive.name == "t.tar.gz"
    assert export.verify_bundle(archive)["files"] == export.verify_bundle(path)["files"]


def test_a_bundle_is_replaced_whole(onnx_model, tmp_path):
    first = _bundle(onnx_model, tmp_path / "b")
    (first / "old-marker").write_text("x")
    second = _bundle(onnx_model, tmp_path / "b")
    assert not (second / "old-marker").exists() and export.verify_bundle(second)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_copy_to_needs_a_remote_path(onnx_model, tmp_path):
    path = _bundle(onnx_model, tmp_path / "b")
    with pytest.raises(ExportError, match="user@host:/path"):
        export.copy_to(path, "/local/dir")
    assert np.load(path / "probe_input.npy").shape == (4, 1, 8, 8)


def _run_py(path, *args):
    return subprocess.run([sys.executable, "run.py", "--backend", "onnxruntime", "--duration", "0.1",
                           "--iterations", "5", "--no-energy", *args], cwd=path, capture_output=True, text=True,
                          check=False)


def _rewrite(path, change):
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def _model_above(manifest):
    manifest.update(model="../outside.onnx")


@pytest.mark.parametrize(("change", "message"), [
    (_model_above, "not a path inside the bundle"),
    (lambda m: m.update(model="/etc/hostname"), "not a path inside the bundle"),
    (lambda m: m["probe"].update(input="../probe.npy"), "not a path inside the bundle"),
    (lambda m: m.pop("files"), "has no files"),
    (lambda m: m.update(trtexec="rm -rf /"), "trtexec is not a command line"),
], ids=["model-above", "model-absolute", "probe-above", "no-files", "trtexec-string"])
def test_a_manifest_cannot_point_outside_the_bundle_or_lack_its_parts(onnx_model, tmp_path, edgewise, change,
                                                                      message):
    path = _bundle(onnx_model, tmp_path / "b")
    _rewrite(path, change)
    with pytest.raises(ExportError, match=message):
        export.verify_bundle(path)
    if change is _model_above:  # the board's runner reads the manifest with the same code: one run shows it
        completed = _run_py(path)
        assert completed.returncode == 2 and message in completed.stderr and "Traceback" not in completed.stderr
    bench = edgewise("bench", str(path), "--target", "x86-host", "--duration", "0.1")
    assert bench.returncode == 2 and message in bench.stderr


def test_a_model_linked_from_outside_and_a_damaged_manifest_are_refused(onnx_model, tmp_path, edgewise):
    path = _bundle(onnx_model, tmp_path / "b")
    outside = tmp_path / "elsewhere.onnx"
    (path / "model.onnx").rename(outside)
    (path / "model.onnx").symlink_to(outside)
    with pytest.raises(ExportError, match="leads outside the bundle"):
        export.verify_bundle(path)
    assert _run_py(path).returncode == 2
    (path / "model.onnx").unlink()
    outside.rename(path / "model.onnx")
    (path / "manifest.json").write_text('{"format": "edgewise-bundle/1", "name"')
    with pytest.raises(ExportError, match=r"manifest\.json is not JSON"):
        export.verify_bundle(path)
    assert "manifest.json is not JSON" in _run_py(path).stderr


def test_bench_of_a_bundle_checks_its_hashes_first(onnx_model, tmp_path, edgewise):
    path = _bundle(onnx_model, tmp_path / "b")
    with open(path / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    bench = edgewise("bench", str(path), "--target", "x86-host", "--duration", "0.1")
    assert bench.returncode == 2 and "files changed or missing since it was written: model.onnx" in bench.stderr


def test_a_signed_bundle_rewritten_with_new_hashes_is_caught_with_the_key(onnx_model, tmp_path, edgewise):
    key = tmp_path / "key"
    assert edgewise("bundle", "keygen", str(key)).returncode == 0
    assert (key.stat().st_mode & 0o777) == 0o600
    assert edgewise("bundle", "keygen", str(key)).returncode == 2  # never overwritten
    path = _bundle(onnx_model, tmp_path / "b", sign_key=key)
    assert export.verify_bundle(path, key)["signature"] == "verified"
    assert _run_py(path, "--key", str(key)).returncode == 0
    # an attacker replaces the model and rewrites its hash and size in the manifest
    import onnx

    from edgewise.board.manifest import sha256

    tampered = onnx.load(str(path / "model.onnx"))
    tampered.doc_string = "not the model that was signed"
    onnx.save(tampered, str(path / "model.onnx"))

    _rewrite(path, lambda m: m["files"]["model.onnx"].update(sha256=sha256(path / "model.onnx"),
                                                                bytes=(path / "model.onnx").stat().st_size))
    assert export.verify_bundle(path)["signature"] == "not checked (no key given)"  # hashes alone cannot tell
    with pytest.raises(ExportError, match="signature does not match the key"):
        export.verify_bundle(path, key)
    completed = _run_py(path, "--key", str(key))
    assert completed.returncode == 2 and "signature does not match" in completed.stderr
    checked = edgewise("bundle", "verify", str(path), "--key", str(key))
    assert checked.returncode == 2 and "signature does not match" in checked.stderr
    # stripping the signature does not help either
    _rewrite(path, lambda m: m.pop("signature"))
    with pytest.raises(ExportError, match="not signed, and a key was given"):
        export.verify_bundle(path, key)
