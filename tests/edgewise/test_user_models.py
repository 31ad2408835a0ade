"""A user's own model through the commands: a torch.save from a training script (--code once), an ONNX file from
today's exporter with a fixed batch, data without labels, and a cost line per command."""

import hashlib
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from edgewise.export.errors import ExportError

TRAINING_SCRIPT = textwrap.dedent('''
    import torch
    from torch import nn

    class MyCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                          nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                          nn.AdaptiveAvgPool2d(1))
            self.head = nn.Linear(16, 4)

        def forward(self, x):
            return self.head(self.features(x).flatten(1))

    if __name__ == "__main__":
        torch.manual_seed(0)
        model = MyCNN().eval()
        for bn in (model.features[1], model.features[4]):
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
        torch.save(model, "my_cnn.pt")
''')


@pytest.mark.slow
def test_a_model_saved_from_a_training_script_goes_through_with_its_code_named_once(tmp_path, edgewise, monkeypatch):
    (tmp_path / "train.py").write_text(TRAINING_SCRIPT)
    subprocess.run([sys.executable, "train.py"], cwd=tmp_path, check=True)
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((30, 1, 8, 8), dtype=np.float32))
    monkeypatch.chdir(tmp_path)
    refused = edgewise("prune", "my_cnn.pt", "--data", "x.npz", "-o", "p.pt", "--criterion", "l1", "--rate", "0.3")
    assert refused.returncode == 2 and "__main__.MyCNN" in refused.stderr and "--code" in refused.stderr
    pruned = edgewise("prune", "my_cnn.pt", "--data", "x.npz", "-o", "p.pt", "--criterion", "l1", "--rate", "0.3",
                      "--code", "train.py")
    assert pruned.returncode == 0, pruned.stderr
    assert "cost: score 1.0000 -> " in pruned.stderr and "top-1 agreement with the source model" in pruned.stderr
    quantized = edgewise("quantize", "p.pt", "--data", "x.npz", "-o", "q.pt", "--method", "uniform")  # no --code
    assert quantized.returncode == 0, quantized.stderr
    assert "batch-norm folded into the layer before it first" in quantized.stderr
    exported = edgewise("export", "q.pt", "--records", "q.npz", "--data", "x.npz", "-o", "q.onnx")
    assert exported.returncode == 0, exported.stderr
    assert "as shipped in ONNX Runtime (top-1 agreement with the source model, " in exported.stderr
    assert edgewise("bench", "q.onnx", "--batch", "1", "--duration", "0.1", "--iterations", "5").returncode == 0


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


@pytest.fixture(scope="module")
def vendor_file(tmp_path_factory, exported_as_vendors_do):
    """An ONNX file as torch's current exporter writes it by default: opset 20 or later, the batch fixed at 1."""
    torch.manual_seed(0)
    return exported_as_vendors_do(_Net(), torch.rand(1, 3, 8, 8), tmp_path_factory.mktemp("vendor") / "net.onnx")


@pytest.mark.slow
def test_a_current_onnx_file_with_a_fixed_batch_and_no_labels_goes_through(vendor_file, tmp_path, edgewise,
                                                                            monkeypatch):
    import onnx

    assert max(o.version for o in onnx.load(str(vendor_file)).opset_import) >= 18
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(1).random((30, 3, 8, 8), dtype=np.float32))
    monkeypatch.chdir(tmp_path)
    steps = [("prune", str(vendor_file), "--data", "x.npz", "-o", "p.pt", "--criterion", "lrp", "--rate", "0.3",
              "--latency"),
             ("quantize", "p.pt", "--data", "x.npz", "-o", "q.pt", "--method", "ecqx"),
             ("export", "q.pt", "--records", "q.npz", "--data", "x.npz", "-o", "q.onnx"),
             ("export", "q.pt", "--records", "q.npz", "--data", "x.npz", "-o", "w4a8.onnx", "--w4a8")]
    for args in steps:
        done = edgewise(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert "cost: score" in done.stderr and "agreement with the source model" in done.stderr, done.stderr
    assert json.loads((tmp_path / "p.prune.json").read_text())["latency"]["source"]["kind"] == "measured"
    shipped = onnx.load(str(tmp_path / "q.onnx"))
    assert [d.dim_value for d in shipped.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 8, 8]


@pytest.mark.slow
def test_a_failed_export_leaves_the_earlier_file_as_it_was(vendor_file, tmp_path, monkeypatch):
    from edgewise import export
    from edgewise.commands import export_file

    np.savez(tmp_path / "x.npz", x=np.random.default_rng(2).random((20, 3, 8, 8), dtype=np.float32))
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the 4-bit file of an earlier command")
    before = hashlib.sha256(out.read_bytes()).hexdigest()

    def failing(*args, **kwargs):
        raise ExportError("ONNX Runtime differs from torch", "the export is wrong; do not deploy it")

    monkeypatch.setattr(export, "verify", failing)
    with pytest.raises(ExportError):
        export_file(str(vendor_file), out, data=str(tmp_path / "x.npz"))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "x.npz"]  # nothing half-written beside it


@pytest.mark.slow
def test_a_recipe_takes_an_onnx_file_with_data_without_labels(vendor_file, tmp_path):
    import json

    from edgewise.pipeline import run_recipe
    from edgewise.recipe import load_recipe

    np.savez(tmp_path / "x.npz", x=np.random.default_rng(3).random((30, 3, 8, 8), dtype=np.float32))
    (tmp_path / "r.yaml").write_text(f"name: vendor\nmodels:\n  - name: net\n    onnx: {vendor_file}\n"
                                     f"    data: {{name: npz, path: {tmp_path / 'x.npz'}}}\n"
                                     "    prune: {criterion: l1, rate: 0.3}\n    quantize: {method: uniform, bits: 4}\n"
                                     "    export: {}\nreport: false\n")
    result = run_recipe(load_recipe(tmp_path / "r.yaml"), out=tmp_path / "runs")
    rows = json.loads((result.root / "results.json").read_text())
    assert [r["score_name"] for r in rows] == ["top-1 agreement"] * 3
    assert rows[0]["score"] == 1.0  # the source agrees with itself


def test_a_recipe_builds_a_users_own_class_by_its_import_path():
    from edgewise.zoo.models import build_model

    module = build_model("torch.nn:Linear", (4,), 3, in_features=4, out_features=3)
    assert isinstance(module, nn.Linear)
    from edgewise.board.errors import UserError

    with pytest.raises(UserError, match="cannot be imported"):
        build_model("no_such_pkg.models:Net", (4,), 3)


def test_prune_never_writes_over_its_data_or_the_source_file(vendor_file, tmp_path, edgewise):
    data = tmp_path / "x.npz"
    np.savez(data, x=np.zeros((10, 3, 8, 8), np.float32))
    before = hashlib.sha256(data.read_bytes()).hexdigest()
    refused = edgewise("prune", str(vendor_file), "--data", str(data), "-o", str(data))
    assert refused.returncode == 2 and "would destroy the input" in refused.stderr
    assert hashlib.sha256(data.read_bytes()).hexdigest() == before
