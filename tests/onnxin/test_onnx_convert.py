import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn

from edgewise import compress, export
from edgewise.board.errors import UserError
from edgewise.core.modelio import load_model, save_model
from edgewise.export.checks import check_shapes
from edgewise.onnxin import OnnxGraph, onnx_to_torch


class _Net(nn.Module):
    """A small CNN with the parts exporters write: BatchNorm, a residual add, a depthwise conv, a Gemm head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU())
        self.mid = nn.Sequential(nn.Conv2d(16, 24, 1), nn.ReLU())
        self.head = nn.Linear(24, 4)

    def forward(self, x):
        y = self.stem(x)
        y = self.mid(self.dw(y) + y)
        return self.head(y.mean((2, 3)))


def _exported(tmp_path):
    torch.manual_seed(0)
    net = _Net().eval()
    for bn in (net.stem[1], net.dw[1]):  # statistics that are not the identity, so folding and pruning show
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "net.onnx"
    # torch's TorchScript exporter folds BatchNorm into the convs; its training mode keeps them, as other
    # frameworks' exporters do
    torch.onnx.export(net, (torch.rand(2, 3, 16, 16),), str(path), dynamo=False, opset_version=13,
                      training=torch.onnx.TrainingMode.PRESERVE,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return net, path


def _ort(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_converted_model_computes_what_the_file_does_and_reloads_without_consent(tmp_path):
    _, path = _exported(tmp_path)
    x = np.random.default_rng(0).random((5, 3, 16, 16), dtype=np.float32)
    module = onnx_to_torch(path, x[:2])
    assert isinstance(module, OnnxGraph)
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), _ort(path, x), rtol=1e-4, atol=1e-5)
    save_model(module, tmp_path / "m.pt", {"source_onnx": str(path)})
    loaded, card = load_model(tmp_path / "m.pt")  # weights_only: no trust needed
    with torch.no_grad():
        np.testing.assert_array_equal(loaded(torch.from_numpy(x)).numpy(), module(torch.from_numpy(x)).numpy())
    assert card["source_onnx"] == str(path)


def test_pruned_converted_model_exports_as_its_source_graph_with_smaller_tensors(tmp_path):
    _, path = _exported(tmp_path)
    x = torch.rand(8, 3, 16, 16)
    module = onnx_to_torch(path, x[:2].numpy())
    ref = compress.ReferenceSamples(x, torch.arange(8) % 4, "classification")
    result = compress.prune(module, ref, "l1", 0.5)
    assert result.after.params < result.before.params
    out = export.to_onnx(result.model, x[:1], tmp_path / "pruned.onnx")
    check = export.verify(out.path, result.model, x)
    assert check["rel_diff"] < 1e-5
    proto = onnx.load(str(out.path))
    shapes = {i.name: tuple(i.dims) for i in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert any(shapes[n.input[1]][0] < 16 for n in convs)  # physically smaller in the file
    depthwise = next(n for n in convs if next(a.i for a in n.attribute if a.name == "group") > 1)
    assert next(a.i for a in depthwise.attribute if a.name == "group") == shapes[depthwise.input[1]][0]
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 21


def test_quantized_converted_model_exports_with_4_bit_weights(tmp_path):
    _, path = _exported(tmp_path)
    x = torch.rand(8, 3, 16, 16)
    module = onnx_to_torch(path, x[:2].numpy())
    quantized = compress.quantize(module, "uniform", 4)
    out = export.to_onnx(quantized.model, x[:1], tmp_path / "q.onnx", quantized.records)
    assert sorted(out.quantized_layers) == sorted(quantized.records)
    assert export.verify(out.path, quantized.model, x, quantized=True)["rel_diff"] < 1e-4
    int4 = [i for i in onnx.load(str(out.path)).graph.initializer if i.data_type == onnx.TensorProto.INT4]
    assert len(int4) == len(quantized.records)


def test_folded_batchnorm_becomes_identity_in_the_exported_graph(tmp_path):
    _, path = _exported(tmp_path)
    x = torch.rand(4, 3, 16, 16)
    module = onnx_to_torch(path, x[:2].numpy())
    folded, done = compress.fold_batchnorm(module, x)
    assert done
    out = export.to_onnx(folded, x[:1], tmp_path / "f.onnx")
    before = [n.op_type for n in onnx.load(str(path)).graph.node].count("BatchNormalization")
    after = [n.op_type for n in onnx.load(str(out.path)).graph.node].count("BatchNormalization")
    assert after == before - len(done)
    with torch.no_grad():
        np.testing.assert_allclose(_ort(out.path, x.numpy()), folded(x).numpy(), rtol=1e-4, atol=1e-5)


def _constant_weights_model(tmp_path, op: str = "Relu", domain: str = ""):
    """A Conv whose weights are Constant nodes, as Paddle's exporter writes them, then `op`."""
    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Constant", [], ["w"], value=w), helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node(op, ["c"], ["y"], domain=domain)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 4, 6, 6])])
    opsets = [helper.make_opsetid("", 11)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    path = tmp_path / "c.onnx"
    onnx.save(helper.make_model(graph, opset_imports=opsets, ir_version=8), str(path))
    return path


def test_weights_held_as_constant_nodes_are_converted(tmp_path):
    path = _constant_weights_model(tmp_path)
    x = np.random.default_rng(2).random((2, 3, 8, 8), dtype=np.float32)
    module = onnx_to_torch(path, x)
    assert any(isinstance(m, nn.Conv2d) for m in module.modules())
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(x)).numpy(), _ort(path, x), rtol=1e-5, atol=1e-6)


def test_ops_without_a_converter_are_named_in_one_line(tmp_path):
    path = _constant_weights_model(tmp_path, "Mystery", "com.vendor")
    with pytest.raises(UserError) as caught:
        onnx_to_torch(path, np.zeros((1, 3, 8, 8), np.float32))
    assert "com.vendor:Mystery" in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_or_damaged_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        onnx_to_torch(tmp_path / "none.onnx", np.zeros((1, 3, 8, 8), np.float32))
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(UserError, match="cannot read ONNX file"):
        onnx_to_torch(tmp_path / "bad.onnx", np.zeros((1, 3, 8, 8), np.float32))


def test_prune_and_export_commands_take_an_onnx_file(tmp_path, edgewise):
    _, path = _exported(tmp_path)
    rng = np.random.default_rng(3)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.random((80, 3, 16, 16), dtype=np.float32), y=np.arange(80) % 4)
    pruned = tmp_path / "p.pt"
    result = edgewise("prune", str(path), "--data", str(data), "-o", str(pruned), "--criterion", "l1", "--rate", "0.3")
    assert result.returncode == 0, result.stderr
    no_data = edgewise("prune", str(path), "-o", str(tmp_path / "x.pt"))
    assert no_data.returncode == 2 and "--data" in no_data.stderr and not (tmp_path / "x.pt").exists()
    result = edgewise("export", str(pruned), "-o", str(tmp_path / "p.onnx"), "--data", str(data))
    assert result.returncode == 0, result.stderr
    assert "against the ONNX file it came from" in " ".join(result.stderr.split())
    assert _ort(tmp_path / "p.onnx", np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 4)


def test_prune_ignore_leaves_the_named_layer_whole_and_an_unknown_name_is_refused(tmp_path, edgewise):
    _, path = _exported(tmp_path)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(4).random((80, 3, 16, 16), dtype=np.float32), y=np.arange(80) % 4)
    full = edgewise("prune", str(path), "--data", str(data), "-o", str(tmp_path / "a.pt"), "--criterion", "l1")
    assert full.returncode == 0, full.stderr
    report = json.loads((tmp_path / "a.prune.json").read_text())
    cut = next(r["layer"] for r in report["layers"] if r["channels_after"] < r["channels_before"])
    kept = edgewise("prune", str(path), "--data", str(data), "-o", str(tmp_path / "b.pt"), "--criterion", "l1",
                    "--ignore", cut)
    assert kept.returncode == 0, kept.stderr
    rows = {r["layer"]: r for r in json.loads((tmp_path / "b.prune.json").read_text())["layers"]}
    assert rows[cut]["channels_after"] == rows[cut]["channels_before"]
    unknown = edgewise("prune", str(path), "--data", str(data), "-o", str(tmp_path / "c.pt"), "--ignore", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr and not (tmp_path / "c.pt").exists()


def _batchnorm_as_mul_add(tmp_path):
    """Conv -> Mul and Add of per-channel constants (Paddle's BatchNorm) -> Relu -> Conv -> pool -> Gemm."""
    rng = np.random.default_rng(5)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c1", "scale"], ["m"]), helper.make_node("Add", ["m", "shift"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Conv", ["r", "w2"], ["c2"]),
             helper.make_node("GlobalAveragePool", ["c2"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wl", "bl"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 4])],
        [init("w1", 8, 3, 3, 3), init("b1", 8), init("scale", 1, 8, 1, 1), init("shift", 1, 8, 1, 1),
         init("w2", 6, 8, 1, 1), init("wl", 4, 6), init("bl", 4)])
    path = tmp_path / "mul_add.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_per_channel_constants_are_cut_with_their_channels_and_exported_so(tmp_path):
    """Paddle writes BatchNorm as Mul and Add of (1, C, 1, 1) constants: they are cut with the conv's channels, so
    the conv is pruned instead of left whole, and the exported graph carries the cut constants."""
    path = _batchnorm_as_mul_add(tmp_path)
    x = torch.rand(8, 3, 8, 8)
    module = onnx_to_torch(path, x[:2].numpy())
    ref = compress.ReferenceSamples(x, torch.arange(8) % 4, "classification")
    result = compress.prune(module, ref, "l1", 0.5, ignore=("Conv_1",))
    assert "Conv" not in result.left_whole
    assert result.model.get_submodule("Conv").out_channels == 4
    assert {tuple(p.shape) for p in result.model.initializers.parameters()} == {(1, 4, 1, 1)}
    out = export.to_onnx(result.model, x[:1], tmp_path / "p.onnx")
    with torch.no_grad():
        np.testing.assert_allclose(_ort(out.path, x.numpy()), result.model(x).numpy(), rtol=1e-4, atol=1e-5)
    shapes = {i.name: tuple(i.dims) for i in onnx.load(str(out.path)).graph.initializer}
    assert sorted(shapes[n.input[1]] for n in onnx.load(str(out.path)).graph.node if n.op_type in ("Mul", "Add")) \
        == [(1, 4, 1, 1), (1, 4, 1, 1)]


class _Tokens(nn.Module):
    """A conv stem, then linear layers on (N, T, C) tokens, which torch exports as MatMul and Add."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc1, self.fc2, self.head = nn.Linear(16, 32), nn.Linear(32, 16), nn.Linear(16, 4, bias=False)

    def forward(self, x):
        tokens = self.conv(x).flatten(2).transpose(1, 2)
        tokens = tokens + self.fc2(torch.relu(self.fc1(tokens)))
        return self.head(tokens).mean(1)


def test_matmul_and_add_of_constants_become_linear_layers_that_prune_quantize_and_export(tmp_path):
    torch.manual_seed(0)
    net = _Tokens().eval()
    path = tmp_path / "tokens.onnx"
    torch.onnx.export(net, (torch.rand(2, 3, 8, 8),), str(path), dynamo=False, opset_version=13, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    assert [n.op_type for n in onnx.load(str(path)).graph.node].count("MatMul") == 3
    x = torch.rand(8, 3, 8, 8)
    module = onnx_to_torch(path, x[:2].numpy())
    linears = {n: m for n, m in module.named_modules() if isinstance(m, nn.Linear)}
    assert sorted(linears) == ["fc1/MatMul", "fc2/MatMul", "head/MatMul"]
    assert linears["fc1/MatMul"].bias is not None and linears["head/MatMul"].bias is None
    assert not any(p.dim() == 2 for p in module.initializers.parameters())  # the weights moved, not copied
    with torch.no_grad():
        torch.testing.assert_close(module(x), net(x))
    ref = compress.ReferenceSamples(x, torch.arange(8) % 4, "classification")
    pruned = compress.prune(module, ref, "l1", 0.5, ignore=("conv/Conv",)).model
    assert pruned.get_submodule("fc1/MatMul").out_features < 32
    float_file = export.to_onnx(pruned, x[:1], tmp_path / "p.onnx")
    # the file holds the MatMuls' (K, N) weights; the shape check reads them in torch's layout
    assert {r["layer"]: r["onnx"] for r in check_shapes(float_file.path, pruned, module)}["fc1/MatMul"] == [
        pruned.get_submodule("fc1/MatMul").out_features, 16]
    quantized = compress.quantize(pruned, "uniform", 4)
    out = export.to_onnx(quantized.model, x[:1], tmp_path / "q.onnx", quantized.records)
    assert sorted(out.quantized_layers) == sorted(quantized.records)
    assert export.verify(out.path, quantized.model, x, quantized=True)["rel_diff"] < 1e-4
    proto = onnx.load(str(out.path))
    assert [n.op_type for n in proto.graph.node].count("MatMul") == 3  # written back as the MatMuls they were
    assert len([i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT4]) == 4
    check_shapes(out.path, quantized.model, module)


class _TextMap(nn.Module):
    """A DBNet-like text detector in miniature: a per-pixel probability map (N, 1, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 1), nn.Sigmoid())

    def forward(self, x):
        return self.body(x)


def test_prune_detect_takes_an_onnx_map_detector_without_labels(tmp_path, edgewise):
    torch.manual_seed(0)
    path = tmp_path / "map.onnx"
    torch.onnx.export(_TextMap().eval(), (torch.rand(2, 3, 16, 16),), str(path), dynamo=False, opset_version=13,
                      input_names=["x"], output_names=["map"], dynamic_axes={"x": {0: "n"}, "map": {0: "n"}})
    images = tmp_path / "pages.npz"
    np.savez(images, x=np.random.default_rng(6).random((8, 3, 16, 16), dtype=np.float32))
    result = edgewise("prune", str(path), "--detect", "--data", str(images), "-o", str(tmp_path / "p.pt"),
                      "--criterion", "lrp", "--rule", "conv=alpha2beta1", "--rate", "0.3")
    assert result.returncode == 0, result.stderr
    pruned, card = load_model(tmp_path / "p.pt")
    assert card["source_onnx"] == str(path.resolve()) and card["task"] == "detection"
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in _TextMap().parameters())
    exported = edgewise("export", str(tmp_path / "p.pt"), "-o", str(tmp_path / "p.onnx"), "--data", str(images))
    assert exported.returncode == 0, exported.stderr
    text = " ".join(exported.stderr.split())
    assert "checked by its outputs, not scored" in text and "against the ONNX file it came from" in text
    assert _ort(tmp_path / "p.onnx", np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 1, 16, 16)
    no_images = edgewise("export", str(tmp_path / "p.pt"), "-o", str(tmp_path / "q.onnx"))
    assert no_images.returncode == 2 and "--data images.npz" in no_images.stderr


def test_quantize_keeps_a_converted_graphs_batchnorm_nodes_and_exports(tmp_path):
    from edgewise.commands import export_file, quantize_file
    from edgewise.stages.quantize_config import QuantizeConfig

    _, path = _exported(tmp_path)
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(7).random((20, 3, 16, 16), dtype=np.float32))
    _, outcome = quantize_file(str(path), tmp_path / "q.pt", QuantizeConfig(method="uniform", bits=4),
                               data=str(tmp_path / "x.npz"))
    assert outcome.notes == ()  # written back as the graph it was, BatchNorm nodes included: nothing to fold first
    result = export_file(str(tmp_path / "q.pt"), tmp_path / "q.onnx", tmp_path / "q.npz", str(tmp_path / "x.npz"))
    nodes = [n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node]
    assert "BatchNormalization" in nodes and result["quantized_layers"]


class _UnequalPads(nn.Module):
    """Pads top and bottom unequally before each convolution, as torchcrepe's CREPE does: torch's exporter writes a
    Conv with pads [31, 0, 32, 0], which onnx2torch converts into Sequential(pad, Conv2d)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 8, (64, 1)), nn.Conv2d(8, 8, (64, 1))
        self.head = nn.Linear(8 * 32, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(nn.functional.pad(x, (0, 0, 31, 32))))
        x = torch.relu(self.conv2(nn.functional.pad(x, (0, 0, 31, 32))))
        return self.head(nn.functional.max_pool2d(x, (4, 1)).flatten(1))


def test_a_convolution_converted_with_its_pad_writes_its_pruned_and_quantized_weights_back(tmp_path,
                                                                                         exported_as_vendors_do):
    """The export of torchcrepe's CREPE, converted from ONNX and quantized, failed with 'layer node_conv2d_1.1 has no
    initializer node_conv2d_1.1.weight': the convolution inside Sequential(pad, Conv2d) was never written back, so
    the file carried the source's float weights."""
    torch.manual_seed(0)
    x = torch.randn(8, 1, 128, 1)
    path = exported_as_vendors_do(_UnequalPads().eval(), x[:1], tmp_path / "padded.onnx")
    module = onnx_to_torch(path, x[:1].numpy())
    assert any(isinstance(m, nn.Sequential) and isinstance(m[-1], nn.Conv2d) for m in module.modules())
    quantized = compress.quantize(module, "uniform", 4)
    out = export.to_onnx(quantized.model, x[:1], tmp_path / "q.onnx", quantized.records)
    assert sorted(out.quantized_layers) == sorted(quantized.records)
    assert export.verify(out.path, quantized.model, x[:1], quantized=True)["rel_diff"] < 1e-4
    pruned = compress.prune(module, compress.ReferenceSamples(x, torch.arange(8) % 4), "l1", 0.5).model
    out = export.to_onnx(pruned, x[:1], tmp_path / "p.onnx")
    assert export.verify(out.path, pruned, x[:1])["rel_diff"] < 1e-5
