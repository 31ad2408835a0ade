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
from edgewise.zoo.models import build_model


@pytest.fixture(scope="module")
def good(tmp_path_factory, small_mlp):
    """Valid inputs of every kind a command reads, and damaged copies of them."""
    root = tmp_path_factory.mktemp("inputs")
    _, q = small_mlp(root, model_file="model.pt")
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
    _others(root, probe)
    return root


def _others(root: Path, probe: torch.Tensor) -> None:
    """The inputs of the second pass: another model's records, folders a bundle would destroy, data that asks for
    more memory than there is, ONNX files the kit cannot take, recipes that are not files or hold a key twice."""
    import io
    import os
    import shutil
    import struct
    import zipfile
    import zlib

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    other = compress.quantize(build_model("mlp", (1, 8, 8), 10, hidden=[24]).eval(), "uniform", 4)
    save_records(root / "other.npz", other.records, compress.floats_of(other.model, other.records))
    stream = compress.encode(other.records, compress.floats_of(other.model, other.records))
    (root / "other.nnc").write_bytes(stream.data)
    (root / "project").mkdir()
    (root / "project" / "notes.txt").write_text("a folder of the user's own\n")
    shutil.copytree(root / "bundle", root / "bundle-extra")
    (root / "bundle-extra" / "extra").mkdir()
    header = io.BytesIO()  # an .npy header declaring 10^11 floats, and no data behind it
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (100_000, 1, 1000, 1000)})
    with zipfile.ZipFile(root / "bomb.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue())
        labels = io.BytesIO()
        np.save(labels, np.zeros(100_000, np.int64))
        archive.writestr("y.npy", labels.getvalue())
    x = np.random.default_rng(1).random((40, 1, 8, 8), dtype=np.float32)
    y = np.arange(40) % 2
    y[0] = 2**31
    np.savez(root / "label-2-31.npz", x=x, y=y)
    four_channels = np.random.default_rng(1).random((40, 4, 8, 8), dtype=np.float32)
    np.savez(root / "rgba.npz", x=four_channels, y=np.arange(40) % 10)
    for cls in ("a", "b"):  # a PNG whose header says 60000 x 60000 pixels: no pixel is ever decoded
        (root / "huge-png" / cls).mkdir(parents=True)
        ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
        chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                    + struct.pack(">I", zlib.crc32(kind + data)))
        (root / "huge-png" / cls / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                                      + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    (root / "ext").mkdir()
    def linear(batch):
        nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["y"])]
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 8, 8])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
                                  [numpy_helper.from_array(np.ones((64, 10), np.float32), "W")])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    onnx.save(linear(1), root / "batch-1.onnx")
    # four digits (256 values) do not make rows of 100: ONNX Runtime refuses the data
    odd = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
                            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 100])],
                            [numpy_helper.from_array(np.array([-1, 100], np.int64), "shape")])
    onnx.save(helper.make_model(odd, opset_imports=[helper.make_opsetid("", 17)]), root / "rows-of-100.onnx")
    external = linear("batch")
    onnx.save_model(external, root / "ext" / "ext.onnx", save_as_external_data=True, location="ext.data",
                    size_threshold=0)
    for name, location in (("missing-data", "gone.data"), ("outside-data", "../../q.npz")):
        moved = onnx.load(root / "ext" / "ext.onnx", load_external_data=False)
        for entry in moved.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        onnx.save(moved, root / "ext" / f"{name}.onnx")
    strings = helper.make_graph([helper.make_node("Identity", ["s"], ["o"])], "g",
                                [helper.make_tensor_value_info("s", TensorProto.STRING, [1])],
                                [helper.make_tensor_value_info("o", TensorProto.STRING, [1])])
    onnx.save(helper.make_model(strings, opset_imports=[helper.make_opsetid("", 17)]), root / "string.onnx")
    future = onnx.load(root / "q.onnx")
    for entry in future.opset_import:
        if entry.domain == "":
            entry.version = 99
    onnx.save(future, root / "opset99.onnx")
    custom = helper.make_graph([helper.make_node("Flatten", ["x"], ["f"]),
                                helper.make_node("FooBar", ["f"], ["y"], domain="com.example")], "g",
                               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    onnx.save(helper.make_model(custom, opset_imports=opsets), root / "custom.onnx")
    (root / "twice.yaml").write_text("name: r\nmodels:\n  - zoo: digits-mlp\n    prune: {rate: 0.3}\n"
                                     "    prune: {rate: 0.5}\n")
    (root / "long-name.yaml").write_text(f"name: {'a' * 150}\nmodels:\n  - zoo: digits-mlp\n")
    (root / "huge-rail.yaml").write_text("name: r\nmodels:\n  - name: m\n    arch: railnet\n"
                                         "    data: {name: rail, train: 1000000000}\n")
    os.symlink("loop-b.yaml", root / "loop-a.yaml")
    os.symlink("loop-a.yaml", root / "loop-b.yaml")
    os.mkfifo(root / "fifo.yaml")


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
    # an output that is one of the inputs, or a place a bundle would destroy
    add("decode-onto-its-input", ["decode", "{in}/q.nnc", "-o", "{in}/q.nnc"])
    add("encode-onto-its-input", ["encode", "{in}/q.npz", "-o", "{in}/q.npz"])
    add("export-onto-its-records", ["export", "{in}/q.pt", "--records", "{in}/q.npz", "-o", "{in}/q.npz"])
    add("prune-onto-its-input", ["prune", "{in}/model.pt", "-o", "{in}/model.pt", "--data", "digits"])
    add("quantize-model-and-records-one-file", ["quantize", "{in}/model.pt", "-o", "{out}/q.npz", "--data", "digits"])
    add("deploy-onto-a-file", ["deploy", "{in}/q.pt", "-o", "{in}/recipe.yaml", "--data", "digits"])
    add("deploy-onto-a-folder-of-the-users", ["deploy", "{in}/q.pt", "-o", "{in}/project", "--data", "digits"])
    add("deploy-bitstream-of-another-model", ["deploy", "{in}/q.pt", "--records", "{in}/q.npz", "--bitstream",
                                              "{in}/other.nnc", "-o", "{out}/b"])
    add("deploy-bitstream-of-another-model-without-records", ["deploy", "{in}/q.pt", "--bitstream", "{in}/other.nnc",
                                                              "-o", "{out}/b"])
    add("emulate-data-of-another-size", ["emulate", "{in}/q.npz", "--data", "{in}/rgba.npz"])
    add("prune-classes-for-l1", ["prune", "{in}/model.pt", "-o", "{out}/p.pt", "--data", "digits", "--criterion",
                                 "l1", "--class", "3"])
    add("prune-rule-twice", ["prune", "{in}/model.pt", "-o", "{out}/p.pt", "--data", "digits", "--rule",
                             "linear=epsilon", "--rule", "linear=zplus"])
    add("export-records-of-another-model", ["export", "{in}/q.pt", "--records", "{in}/other.npz", "-o",
                                            "{out}/m.onnx"])
    add("bundle-verify-extra-folder", ["bundle", "verify", "{in}/bundle-extra"])
    # data that asks for more than the machine has, or that the model cannot take
    add("prune-data-header-bomb", ["prune", "{in}/model.pt", "-o", "{out}/p.pt", "--data", "{in}/bomb.npz"])
    add("emulate-records-header-bomb", ["emulate", "{in}/bomb.npz"])
    add("prune-label-2-31", ["prune", "{in}/model.pt", "-o", "{out}/p.pt", "--data", "{in}/label-2-31.npz"])
    add("prune-rgba-for-a-grey-model", ["prune", "{in}/model.pt", "-o", "{out}/p.pt", "--data", "{in}/rgba.npz"])
    add("prune-png-bomb", ["prune", "{in}/model.pt", "-o", "{out}/p.pt", "--data", "{in}/huge-png"])
    # ONNX files the kit cannot take as they are
    for name in ("ext/missing-data", "ext/outside-data", "string", "opset99", "custom"):
        add(f"bench-onnx-{name}", ["bench", f"{{in}}/{name}.onnx", "--batch", "1", "--duration", "0.05"])
    for name in ("ext/missing-data", "ext/outside-data", "string", "opset99", "custom", "batch-1", "rows-of-100"):
        add(f"prune-onnx-{name}", ["prune", f"{{in}}/{name}.onnx", "-o", "{out}/p.pt", "--data", "digits"])
    # recipes that are no regular file, hold a key twice, or ask what run cannot make
    for name in ("twice", "long-name", "huge-rail", "loop-a", "fifo"):
        add(f"recipe-check-{name}", ["recipe", "check", f"{{in}}/{name}.yaml"])
        add(f"run-recipe-{name}", ["run", f"{{in}}/{name}.yaml", "--out", "{out}/runs"])
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
