"""Every command meets every kind of bad input it can: a missing, empty, damaged or wrong file, a directory for a
file, a number out of range, an unknown choice. Each must exit 2 with at most two lines (the error and its fix), no
traceback, and leave every file as it was: nothing written, nothing changed."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from edgewise import compress, export
from edgewise.base.records import save_records
from edgewise.modelio import save_model
from edgewise.zoo.models import build_model


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """Valid inputs of every kind a command reads, and damaged copies of them."""
    root = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10, hidden=[16]).eval()
    card = {"data_spec": {"name": "digits"}, "input_shape": [1, 8, 8], "task": "classification"}
    save_model(model, root / "model.pt", card)
    q = compress.quantize(model, "uniform", 4)
    save_model(q.model, root / "q.pt", card)
    save_records(root / "q.npz", q.records, compress.floats_of(q.model, q.records))
    (root / "q.nnc").write_bytes(compress.encode(q.records, compress.floats_of(q.model, q.records)).data)
    probe = torch.rand(2, 1, 8, 8)
    export.to_onnx(q.model, probe, root / "q.onnx", q.records)
    with torch.no_grad():
        expected = q.model(probe).numpy()
    export.bundle(root / "q.onnx", root / "bundle", name="b", probe_input=probe.numpy(), probe_output=expected,
                  trtexec=None)
    (root / "recipe.yaml").write_text("name: r\nmodels:\n  - zoo: digits-mlp\n")
    (root / "empty").write_bytes(b"")
    (root / "garbage").write_bytes(np.random.default_rng(0).bytes(4096))
    for name in ("model.pt", "q.npz", "q.nnc", "q.onnx"):
        data = (root / name).read_bytes()
        (root / f"truncated-{name}").write_bytes(data[: len(data) // 2])
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        (root / f"flipped-{name}").write_bytes(bytes(flipped))
    (root / "folder").mkdir()
    np.savez(root / "images.npz", x=np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32))
    return root


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def _files(kind: str) -> list[str]:
    """Bad stand-ins for a file of `kind` (a name in the inputs folder, or a path that does not exist)."""
    out = ["missing.file", "folder", "empty", "garbage"]
    if kind in ("model.pt", "q.npz", "q.nnc", "q.onnx"):
        out += [f"truncated-{kind}", f"flipped-{kind}"]
    return out


# per numeric option, values it must refuse (what is out of range for it, or not a number of its type)
OUT_OF_RANGE = {"rate": ["-1", "1", "nan", "inf", "1e30"], "lambda": ["-1", "nan", "inf", "1e30"],
                "duration": ["-1", "nan", "inf", "1e30"], "count": ["-1", "0", "nan", "1e30"]}


def _cases() -> list[tuple[str, list[str]]]:
    """(case id, argv with {in} for the inputs folder and {out} for a fresh output path)."""
    cases = []

    def add(name, argv):
        cases.append(pytest.param(argv, id=name))

    for bad in _files("model.pt"):
        add(f"prune-model-{bad}", ["prune", f"{{in}}/{bad}", "-o", "{out}/p.pt", "--data", "digits"])
        add(f"quantize-model-{bad}", ["quantize", f"{{in}}/{bad}", "-o", "{out}/q.pt", "--data", "digits"])
        add(f"export-model-{bad}", ["export", f"{{in}}/{bad}", "-o", "{out}/m.onnx", "--data", "digits"])
        add(f"deploy-model-{bad}", ["deploy", f"{{in}}/{bad}", "-o", "{out}/b", "--data", "digits"])
    for bad in _files("q.npz"):
        add(f"encode-records-{bad}", ["encode", f"{{in}}/{bad}", "-o", "{out}/q.nnc"])
        add(f"export-records-{bad}", ["export", "{in}/q.pt", "--records", f"{{in}}/{bad}", "-o", "{out}/m.onnx"])
        add(f"emulate-records-{bad}", ["emulate", f"{{in}}/{bad}"])
    for bad in _files("q.nnc"):
        add(f"decode-{bad}", ["decode", f"{{in}}/{bad}", "-o", "{out}/q.npz"])
        add(f"deploy-bitstream-{bad}", ["deploy", "{in}/q.pt", "--records", "{in}/q.npz", "--bitstream",
                                         f"{{in}}/{bad}", "-o", "{out}/b"])
    for bad in _files("q.onnx"):
        add(f"bench-{bad}", ["bench", f"{{in}}/{bad}", "--target", "x86-host", "--duration", "0.05"])
        add(f"emulate-onnx-{bad}", ["emulate", f"{{in}}/{bad}"])
    for bad in ["missing.file", "folder", "empty", "garbage"]:
        add(f"run-recipe-{bad}", ["run", f"{{in}}/{bad}", "--out", "{out}/runs"])
        add(f"recipe-check-{bad}", ["recipe", "check", f"{{in}}/{bad}"])
        add(f"bundle-verify-{bad}", ["bundle", "verify", f"{{in}}/{bad}"])
        add(f"bench-result-{bad}", ["bench", "{in}/bundle", "--target", "jetson-orin-nx", "--result",
                                    f"{{in}}/{bad}"])
        add(f"bundle-verify-key-{bad}", ["bundle", "verify", "{in}/bundle", "--key", f"{{in}}/{bad}"])
        add(f"bench-inputs-{bad}", ["bench", "{in}/q.onnx", "--inputs", f"{{in}}/{bad}", "--duration", "0.05"])
    for value in OUT_OF_RANGE["rate"]:
        add(f"prune-rate-{value}", ["prune", "{in}/model.pt", "-o", "{out}/p.pt", "--data", "digits", "--rate",
                                    value])
    for value in OUT_OF_RANGE["lambda"]:
        add(f"quantize-lambda-{value}", ["quantize", "{in}/model.pt", "-o", "{out}/q.pt", "--data", "digits",
                                         "--lambda", value])
    for value in OUT_OF_RANGE["duration"]:
        add(f"bench-duration-{value}", ["bench", "{in}/q.onnx", "--duration", value])
    for value in OUT_OF_RANGE["count"]:
        add(f"bench-iterations-{value}", ["bench", "{in}/q.onnx", "--iterations", value])
        add(f"bench-threads-{value}", ["bench", "{in}/q.onnx", "--threads", value, "--duration", "0.05"])
        add(f"bench-batch-{value}", ["bench", "{in}/q.onnx", "--batch", value, "--duration", "0.05"])
        add(f"emulate-bits-{value}", ["emulate", "{in}/q.npz", "--activation-bits", value])
        add(f"export-samples-{value}", ["export", "{in}/q.pt", "--records", "{in}/q.npz", "-o", "{out}/w.onnx",
                                        "--w4a8", "--calibration-samples", value])
        add(f"run-jobs-{value}", ["run", "{in}/recipe.yaml", "--out", "{out}/runs", "--jobs", value])
    for option, command in [("--criterion", "prune"), ("--method", "quantize"), ("--target", "emulate"),
                            ("--calibrator", "emulate"), ("--target", "bench"), ("--backend", "bench"),
                            ("--precision", "bench"), ("--activations", "export"), ("--device", "prune")]:
        argv = {"prune": ["prune", "{in}/model.pt", "-o", "{out}/p.pt", "--data", "digits"],
                "quantize": ["quantize", "{in}/model.pt", "-o", "{out}/q.pt", "--data", "digits"],
                "emulate": ["emulate", "{in}/q.npz"],
                "bench": ["bench", "{in}/q.onnx", "--duration", "0.05"],
                "export": ["export", "{in}/q.pt", "--records", "{in}/q.npz", "-o", "{out}/w.onnx", "--w4a8"]}[command]
        add(f"{command}{option}-unknown", [*argv, option, "no-such-thing"])
    for command in (["encode", "{in}/q.npz", "-o", "{in}/folder"], ["decode", "{in}/q.nnc", "-o", "{in}/folder"],
                    ["export", "{in}/q.pt", "-o", "{in}/folder"], ["prune", "{in}/model.pt", "-o", "{in}/folder",
                                                                  "--data", "digits"],
                    ["bundle", "keygen", "{in}/q.npz"], ["run", "{in}/recipe.yaml", "--out", "{in}/q.npz"]):
        add(f"{command[0]}-output-{Path(command[-1]).name}", command)
    add("bench-input-bad-shape", ["bench", "{in}/q.onnx", "--input", "x:1xfour"])
    add("bench-input-unknown-name", ["bench", "{in}/q.onnx", "--input", "y:1x1x8x8"])
    add("prune-detect-no-images", ["prune", "{in}/model.pt", "-o", "{out}/p.pt", "--detect"])
    add("prune-detect-npz-of-2d", ["prune", "{in}/model.pt", "-o", "{out}/p.pt", "--detect", "--data",
                                   "{in}/q.npz"])
    add("prune-unknown-class", ["prune", "{in}/model.pt", "-o", "{out}/p.pt", "--data", "digits", "--class",
                                "eleven"])
    add("run-name-escapes", ["run", "{in}/recipe.yaml", "--out", "{out}/runs", "--name", "../escape"])
    add("run-force-unknown", ["run", "{in}/recipe.yaml", "--out", "{out}/runs", "--force", "polish"])
    return cases


@pytest.mark.parametrize("argv", _cases())
def test_bad_input_is_one_clear_line_and_changes_nothing(argv, good, tmp_path, edgewise):
    out = tmp_path / "out"
    out.mkdir()
    args = [a.replace("{in}", str(good)).replace("{out}", str(out)) for a in argv]
    before = _tree(good)
    result = edgewise(*args)
    assert result.returncode == 2, f"exit {result.returncode}: {result.stdout[-400:]} {result.stderr[-400:]}"
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("error: ")), None)
    assert start is not None, result.stderr
    assert len(lines) - start <= 2, result.stderr  # the error and its fix
    assert _tree(good) == before, "an input was changed"
    assert _tree(out) == {}, f"something was written: {sorted(_tree(out))}"
