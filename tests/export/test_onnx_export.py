import numpy as np
import onnx
import pytest
import torch

from edgewise import compress, export
from edgewise.export.checks import onnx_weight_shapes
from edgewise.export.errors import ExportError
from edgewise.export.int4 import block_size_for
from edgewise.zoo.models import build_model

# vgg is lenet's export with BatchNorm, which resnet and mobilenetv2 cover
ZOO = [("mlp", (1, 8, 8), 10), ("lenet", (1, 8, 8), 10), ("resnet", (3, 16, 16), 10),
       ("mobilenetv2", (3, 16, 16), 10), ("railnet", (3, 32, 32), 7)]


def _reference(shape, classes, seg):
    x = torch.rand(8, *shape)
    y = torch.randint(0, classes, (8, *shape[1:]) if seg else (8,))
    return compress.ReferenceSamples(x, y, "segmentation" if seg else "classification")


@pytest.mark.parametrize(("arch", "shape", "classes"), ZOO)
def test_float_pruned_and_quantized_exports_match_torch(arch, shape, classes, tmp_path):
    torch.manual_seed(0)
    model = build_model(arch, shape, classes).eval()
    ref = _reference(shape, classes, arch == "railnet")
    probe = ref.x[:4]
    f = export.to_onnx(model, probe[:1], tmp_path / "float.onnx")
    assert export.verify(f.path, model, probe)["rel_diff"] <= 1e-5
    pruned = compress.prune(model, ref, "l1", 0.5).model
    f = export.to_onnx(pruned, probe[:1], tmp_path / "pruned.onnx")
    export.verify(f.path, pruned, probe)
    rows = export.check_shapes(f.path, pruned, model)
    assert any(r["onnx"] != r["original"] for r in rows)
    folded, _ = compress.fold_batchnorm(pruned, probe[:1])
    q = compress.quantize(folded, "ecq", 4, lam=0.05)
    f = export.to_onnx(q.model, probe[:1], tmp_path / "q.onnx", q.records)
    check = export.verify(f.path, q.model, probe, quantized=True)
    assert check["opset"] == 21 and check["rel_diff"] <= 1e-4
    assert set(f.quantized_layers) == set(q.records)
    export.check_shapes(f.path, q.model, model)
    # dynamic batch: other batch sizes run too
    session = export.open_session(f.path)
    assert session.run(None, {"x": ref.x[:3].numpy()})[0].shape[0] == 3


@pytest.mark.parametrize("name", ["resnet18"])  # mobilenet_v2 and more: make bench topic coverage (ONNX parity)
def test_torchvision_exports(name, tmp_path):
    torch.manual_seed(0)
    model = build_model(f"torchvision:{name}", (3, 32, 32), 10).eval()
    probe = torch.rand(2, 3, 32, 32)
    f = export.to_onnx(model, probe, tmp_path / "m.onnx")
    assert export.verify(f.path, model, probe)["rel_diff"] <= 1e-5


class TwoHeads(torch.nn.Module):
    """A segmentation-style model returning {'out', 'aux'}: both become ONNX outputs and both are checked."""

    def __init__(self):
        super().__init__()
        self.body, self.out, self.aux = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 1), \
            torch.nn.Conv2d(8, 4, 1)

    def forward(self, x):
        features = torch.relu(self.body(x))
        return {"out": self.out(features), "aux": self.aux(features)}


def test_every_output_of_a_dict_model_is_verified(tmp_path):
    torch.manual_seed(0)
    model, probe = TwoHeads().eval(), torch.rand(2, 3, 8, 8)
    f = export.to_onnx(model, probe, tmp_path / "m.onnx")
    assert len(f.outputs) == 2
    assert export.verify(f.path, model, probe)["rel_diff"] <= 1e-5
    with torch.no_grad():
        model.aux.weight.mul_(2)  # only the second output changes: the check must see it
    with pytest.raises(ExportError, match="ONNX Runtime differs from torch"):
        export.verify(f.path, model, probe)


def test_shape_check_fails_when_pruning_was_only_a_mask(tmp_path):
    torch.manual_seed(0)
    model = build_model("lenet", (1, 8, 8), 10).eval()
    ref = _reference((1, 8, 8), 10, False)
    pruned = compress.prune(model, ref, "l1", 0.5)
    masked = build_model("lenet", (1, 8, 8), 10).eval()
    masked.load_state_dict(model.state_dict())
    with torch.no_grad():  # zero the removed filters instead of removing them
        kept = pruned.plan["features.0"]
        drop = [i for i in range(16) if i not in kept]
        masked.features[0].weight[drop] = 0
    f = export.to_onnx(masked, ref.x[:2], tmp_path / "masked.onnx")
    with pytest.raises(ExportError, match="does not carry the pruned shapes"):
        export.check_shapes(f.path, pruned.model, model)


def test_int4_initializers_are_int4_and_the_file_is_about_8x_smaller(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", (1, 32, 32), 10, hidden=[1024, 1024]).eval()
    q = compress.quantize(model, "uniform", 4)
    probe = torch.rand(2, 1, 32, 32)
    small = export.to_onnx(q.model, probe, tmp_path / "q.onnx", q.records)
    big = export.to_onnx(model, probe, tmp_path / "f.onnx")
    assert 7.0 < big.bytes / small.bytes <= 8.0
    proto = onnx.load(str(small.path))
    weights = [i for i in proto.graph.initializer if i.name.endswith("weight_q")]
    assert len(weights) == 3 and all(i.data_type == onnx.TensorProto.INT4 for i in weights)
    assert all(len(i.raw_data) == (int(np.prod(i.dims)) + 1) // 2 for i in weights)
    assert onnx_weight_shapes(small.path)["layers.1"] == (1024, 1024)


@pytest.mark.parametrize("bias", [True, False])
def test_ort_fuses_4bit_linear_layers_into_matmulnbits(tmp_path, bias):
    torch.manual_seed(0)
    # bias-free layers before a ReLU, as transformers have them, too (ONNX Runtime leaves DQ -> MatMul -> Relu unfused)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 128, bias=bias), torch.nn.ReLU(),
                                torch.nn.Linear(128, 64, bias=bias), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10, bias=bias)).eval()
    q = compress.quantize(model, "ecq", 4, lam=0.1)
    x = torch.rand(2, 1, 8, 8)
    f = export.to_onnx(q.model, x, tmp_path / "q.onnx", q.records)
    session = export.open_session(f.path, optimized_path=tmp_path / "opt.onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert ops.count("MatMulNBits") == 3 and not {"Gemm", "MatMul", "DequantizeLinear"} & set(ops)
    with torch.no_grad():
        expected = q.model(x).numpy()
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(out - expected).max() <= 0.05 * np.abs(expected).max()  # 8-bit activations inside MatMulNBits


def test_block_sizes():
    assert [block_size_for(k) for k in (8, 16, 64, 100, 1000)] == [None, 16, 64, 64, 128]


def test_quantized_export_refuses_a_batchnorm_the_exporter_would_fold(tmp_path):
    torch.manual_seed(0)
    model = build_model("vgg", (1, 8, 8), 10).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(4.0)
    q = compress.quantize(model, "uniform", 4)
    with pytest.raises(ExportError, match="quantize it again"):
        export.to_onnx(q.model, torch.rand(2, 1, 8, 8), tmp_path / "q.onnx", q.records)
