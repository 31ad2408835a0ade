"""Test set-up: a private model cache, quiet progress bars, a bare machine, shared trained models, the `edgewise`
command in this process or as a real one, and the hardware fakes (trtexec, a simulated Jetson)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

# asked before the bare machine hides the GPU: the switch of the tests that compare the CUDA path with the CPU's
HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(scope="session", autouse=True)
def _bare_machine(tmp_path_factory: pytest.TempPathFactory):
    """Every test sees the same machine, whatever it runs on: empty sysfs and procfs roots (no RAPL, no board), no
    target profiles of the user's, no NVML, no TensorRT, an onnxruntime with the CPU provider alone (onnxruntime-gpu
    would offer CUDA), and no CUDA device for torch (device auto is the CPU, here and in the `edgewise` processes
    tests start). Tests of a reader give it its own fake tree or module; the CUDA tests take the `cuda_device`
    fixture."""
    import onnxruntime

    root = tmp_path_factory.mktemp("bare-machine")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
        patch.setenv("EDGEWISE_SYSFS", str(root / "sys"))
        patch.setenv("EDGEWISE_PROCFS", str(root / "proc"))
        patch.setenv("EDGEWISE_TARGETS", str(root / "targets"))
        patch.setitem(sys.modules, "pynvml", None)
        patch.setitem(sys.modules, "tensorrt", None)
        patch.setattr(torch.cuda, "is_available", lambda: False)
        patch.setenv("CUDA_VISIBLE_DEVICES", "")
        yield root


@pytest.fixture
def cuda_device(monkeypatch: pytest.MonkeyPatch) -> torch.device:
    """The machine's first CUDA device, visible again to the kit for this test; the test is skipped without one."""
    if not HAS_CUDA:
        pytest.skip("no CUDA device on this machine")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return torch.device("cuda", 0)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # a cache outside the user's, so every test session trains from scratch and proves it can
    os.environ["EDGEWISE_CACHE"] = str(tmp_path_factory.mktemp("edgewise-cache"))
    os.environ["EDGEWISE_QUIET"] = "1"


@pytest.fixture(scope="session")
def digits():
    from edgewise.zoo.digits import load_digits_dataset

    return load_digits_dataset()


@pytest.fixture(scope="session")
def rail():
    from edgewise.zoo.data import RailData, load_data

    return load_data(RailData())


def _reference(name: str):
    from edgewise.zoo.cache import trained_model
    from edgewise.zoo.data import load_data
    from edgewise.zoo.reference import REFERENCES

    ref = REFERENCES[name]
    data = load_data(ref.data)
    return trained_model(ref.arch, data, ref.train, 0, ref.arch_args), data


@pytest.fixture(scope="session")
def digits_mlp(_private_cache):
    return _reference("digits-mlp")


@pytest.fixture(scope="session")
def digits_cnn(_private_cache):
    return _reference("digits-cnn")


@pytest.fixture(scope="session")
def rail_net(_private_cache):
    return _reference("rail-net")


def unrecorded_files(root):
    """Files in a run directory that no stage recorded as an output (the manifest and the lock excepted)."""
    import json
    from pathlib import Path

    manifest = json.loads((Path(root) / "manifest.json").read_text())
    recorded = {o["path"] for s in manifest["stages"] for o in s.get("outputs", [])}
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")
                  if p.is_file() and p.name not in ("manifest.json", ".edgewise.lock")
                  and str(p.relative_to(root)) not in recorded)


@pytest.fixture
def unrecorded():
    return unrecorded_files


FAKES = Path(__file__).with_name("fakes")


@pytest.fixture
def fake_trtexec(tmp_path, monkeypatch):
    """Put a `trtexec` that prints the real report formats first on PATH."""
    import shutil
    import stat

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    target = bin_dir / "trtexec"
    target.write_text((FAKES / "trtexec.py").read_text().replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
    target.chmod(target.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert shutil.which("trtexec") == str(target)
    return target


@pytest.fixture
def simulated_jetson(tmp_path, monkeypatch):
    """Make this machine a simulated Jetson (tests/fakes/board.py): `simulated_jetson("thor")` builds the board's
    root, points the kit's sysfs/procfs roots and PATH at it, and returns it (enter it to start the sensors)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("edgewise_test_board", FAKES / "board.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def make(board: str = "orin-nx", trtexec: bool = False, rails_in_sysfs: bool = True):
        fake = FAKES / "trtexec.py" if trtexec else None
        simulated = module.SimulatedJetson(tmp_path / f"board-{board}", board, fake, rails_in_sysfs)
        for name, value in simulated.env.items():
            monkeypatch.setenv(name, value)
        simulated.energy_j = module.energy_j
        return simulated

    return make


@dataclass
class Completed:
    """What a command left: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_in_process(*args: str) -> Completed:
    """`edgewise ARGS` through the real entry point (error mapping and exit codes included), without a new process."""
    from edgewise.cli import main
    from edgewise.core.console import console

    out, err = io.StringIO(), io.StringIO()
    argv, width = sys.argv, console.width
    sys.argv = ["edgewise", *args]
    console.width = 200  # as COLUMNS=200 would make it: no wrapped lines to match against
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, console.width = argv, width
    return Completed(code, out.getvalue(), err.getvalue())


def run_process(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    """`python -m edgewise ARGS` as a separate process (for locks, signals and the real start-up)."""
    return subprocess.run([sys.executable, "-m", "edgewise", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200"}, timeout=600)


def write_small_mlp(root: Path, hidden: int = 16, model_file: str = "m.pt"):
    """A small digits MLP written as the commands read one: the model file, its uniform 4-bit copy `q.pt`, the
    records `q.npz` and their NNCodec bitstream `q.nnc`; returns the model and its QuantizedModel."""
    from edgewise import compress
    from edgewise.base.records import save_records
    from edgewise.core.modelio import save_model
    from edgewise.zoo.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10, hidden=[hidden]).eval()
    card = {"data_spec": {"name": "digits"}, "input_shape": [1, 8, 8], "task": "classification"}
    save_model(model, root / model_file, card)
    quantized = compress.quantize(model, "uniform", 4)
    save_model(quantized.model, root / "q.pt", card)
    floats = compress.floats_of(quantized.model, quantized.records)
    save_records(root / "q.npz", quantized.records, floats)
    (root / "q.nnc").write_bytes(compress.encode(quantized.records, floats).data)
    return model, quantized


@pytest.fixture(scope="session")
def small_mlp():
    return write_small_mlp


@pytest.fixture
def edgewise():
    return run_in_process


@pytest.fixture
def edgewise_process():
    return run_process


def _exported_as_vendors_do(module: torch.nn.Module, example: torch.Tensor, path):
    """`module` written to `path` by torch's exporter with its current defaults (opset 20 or later, the example's
    batch fixed), quietly: what a user brings as "the ONNX file"."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), str(path), external_data=False)
    return path


@pytest.fixture(scope="session")
def exported_as_vendors_do():
    return _exported_as_vendors_do
