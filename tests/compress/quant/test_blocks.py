"""Block-wise steps end to end: the uniform quantizer, the records file, NNCodec, the INT4 ONNX file and the
FantastIC4 kernel all carry the same blocks."""

import numpy as np
import pytest
import torch
from torch import nn

from edgewise import compress, export
from edgewise.base.records import load_records, save_records
from edgewise.board.errors import RecipeError
from edgewise.compress.codec import decode, encode
from edgewise.recipe import parse_recipe
from edgewise.runtime import IntegerMLP
from edgewise.runtime.costs import layer_work


def _heavy_tailed(model: nn.Module, seed: int = 0) -> nn.Module:
    """Laplace weights with per-row lognormal scales: a few large values per row, rows of very different size."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                shape = tuple(module.weight.shape)
                rows = np.exp(rng.normal(0, 1, (shape[0],) + (1,) * (len(shape) - 1)))
                module.weight.copy_(torch.from_numpy((rng.laplace(size=shape) * rows * 0.02).astype(np.float32)))
    return model.eval()


def _mlp():
    torch.manual_seed(0)
    return _heavy_tailed(nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)))


def test_blocks_beat_per_channel_steps_on_heavy_tailed_weights():
    model = _mlp()
    x = torch.randn(512, 256)
    with torch.no_grad():
        reference = model(x)
    errors = {}
    for name, settings in {"layer": {}, "channel": {"per_channel": True}, "block": {"block": 32}}.items():
        q = compress.quantize(model, "uniform", 4, **settings)
        with torch.no_grad():
            errors[name] = float((q.model(x) - reference).abs().max() / reference.abs().max())
    assert errors["block"] < errors["channel"] < errors["layer"]


@pytest.mark.parametrize("method", ["uniform", "ecq"])
def test_the_torch_weights_records_file_and_bitstream_hold_the_same_blocks(tmp_path, method):
    q = compress.quantize(_mlp(), method, 4, block=32)
    for name, r in q.records.items():
        assert r.block == 32 and r.multipliers.shape == (r.levels.shape[0], -(-r.levels.shape[1] // 32))
        np.testing.assert_array_equal(dict(q.model.named_modules())[name].weight.detach().numpy(), r.dequantize())
    back, _ = load_records(save_records(tmp_path / "q.npz", q.records))
    decoded, _ = decode(encode(q.records).data)
    for again in (back, decoded):
        for name, r in q.records.items():
            assert again[name].block == 32 and np.array_equal(again[name].multipliers, r.multipliers)
            assert again[name].dequantize().tobytes() == r.dequantize().tobytes()


@pytest.mark.parametrize("block", [16, 64])
def test_the_int4_onnx_file_computes_the_quantized_model(tmp_path, block):  # uniform; ECQ writes the same records
    model = _heavy_tailed(nn.Sequential(nn.Conv2d(3, 40, 3), nn.ReLU(), nn.Conv2d(40, 24, 3, groups=2), nn.ReLU(),
                                        nn.Flatten(), nn.Linear(24 * 4 * 4, 10)))
    q = compress.quantize(model, "uniform", 4, block=block)
    x = torch.randn(6, 3, 8, 8)
    with torch.no_grad():
        expected = q.model(x).numpy()
    path = export.to_onnx(q.model, x[:1], tmp_path / "m.onnx", q.records).path
    session = export.open_session(path, fast=False)
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(out - expected).max() <= 1e-5 * np.abs(expected).max()
    import onnx

    blocked = [n for n in onnx.load(path).graph.node if n.op_type == "DequantizeLinear"]
    assert len(blocked) == 3 and all(a.i == block for n in blocked for a in n.attribute if a.name == "block_size")


def test_the_integer_kernel_applies_block_scales_exactly(tmp_path):
    q = compress.quantize(_mlp(), "uniform", 4, block=32)
    records = list(q.records.values())
    calibration = np.random.default_rng(1).random((64, 256))
    mlp = IntegerMLP.from_records(records, calibration)
    x = np.random.default_rng(2).random((16, 256))
    runs = [mlp.run_integers(x, mode) for mode in ("bins", "bitplanes", "fast")]
    for accs, logits in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0][0], accs, strict=True))
        assert np.array_equal(runs[0][1], logits)
    # the integers are sum_b m_b x (sum over block b of level x input): the first layer by hand
    first = records[0]
    a = mlp.quantize(x)
    by_hand = sum(first.multipliers[:, b].astype(np.int64)
                  * (a[:, 32 * b:32 * b + 32] @ first.levels[:, 32 * b:32 * b + 32].astype(np.int64).T)
                  for b in range(first.multipliers.shape[1]))
    assert np.array_equal(runs[0][0][0] - mlp.layers[0].bias, by_hand)
    with torch.no_grad():
        float_logits = q.model(torch.from_numpy(x).float()).numpy()
    assert np.mean(runs[0][1].argmax(1) == float_logits.argmax(1)) >= 0.9  # 8-bit activations, same network
    # the same blocks read back from the exported 4-bit ONNX file
    path = export.to_onnx(q.model, torch.zeros(1, 256), tmp_path / "mlp.onnx", q.records).path
    from_onnx = IntegerMLP.from_records(export.records_from_onnx(path), calibration)
    assert np.array_equal(from_onnx.run(x, "bins"), runs[0][1])


def test_block_multiplications_are_counted():
    levels = np.array([[1, 1, 0, 0, 2, 2, 0, 0], [0, 0, 0, 0, 0, 0, 0, 3]], dtype=np.int8)
    # this layer is blocked by 4 for the count only (the chip's blocks are 16 or more)
    plain, blocked = layer_work(levels), layer_work(levels, block=4)
    # plain: bins row 0 {1, 2}, row 1 {3}; plus 2 requantizations
    assert plain["multiplications"] == 3 + 2
    # blocked: bins (row 0: {1} | {2}, row 1: {3}) and one multiplication per non-empty block (3)
    assert blocked["multiplications"] == 3 + 3 + 2
    assert blocked["additions"] == plain["additions"] and blocked["weight_bytes"] == plain["weight_bytes"] + 4


def test_recipes_and_the_command_take_block_sizes(tmp_path, edgewise):
    entry = {"name": "m", "arch": "mlp", "data": "digits"}
    recipe = parse_recipe({"models": [{**entry, "quantize": {"method": "uniform", "block": 32}}]})
    assert recipe.models[0].quantize.block == 32
    with pytest.raises(RecipeError, match="block size 24 is not supported"):
        parse_recipe({"models": [{**entry, "quantize": {"method": "uniform", "block": 24}}]})
    assert parse_recipe({"models": [{**entry, "quantize": {"method": "ecqx", "block": 64}}]}).models[0].quantize.block
    result = edgewise("quantize", "digits-mlp", "-o", str(tmp_path / "q.pt"), "--method", "uniform", "--block", "16")
    assert result.returncode == 0, result.stderr
    records, _ = load_records(tmp_path / "q.npz")
    assert all(r.block == 16 for r in records.values())
    result = edgewise("quantize", "digits-mlp", "-o", str(tmp_path / "e.pt"), "--block", "20")
    assert result.returncode == 2 and "block size 20 is not supported" in result.stderr


def test_ecq_and_ecqx_assign_on_block_steps_with_the_entropy_over_levels(digits):
    from edgewise.compress.quant.qat import train_quantized
    from edgewise.zoo.models import build_model
    from edgewise.zoo.training import evaluate

    model = _mlp()
    plain = compress.quantize(model, "uniform", 4, block=32)
    sparsity = [compress.quantize(model, "ecq", 4, lam=lam, block=32).summary()["sparsity"] for lam in (0.0, 0.1, 0.4)]
    assert sparsity == sorted(sparsity) and sparsity[-1] > plain.summary()["sparsity"] + 0.1
    nearest = compress.quantize(model, "ecq", 4, lam=0.0, block=32)
    for name, r in nearest.records.items():  # lambda 0 is round-to-nearest on the same block grid
        assert np.array_equal(r.multipliers, plain.records[name].multipliers)
        assert np.mean(r.levels == plain.records[name].levels) > 0.999  # ties may round the other way
    torch.manual_seed(0)
    mlp = build_model("mlp", digits.input_shape, digits.num_classes).eval()
    ref = compress.ReferenceSamples.from_split(digits.val.x, digits.val.y, digits.task, 5, output="logit")
    import functools

    train = functools.partial(train_quantized, x=digits.train.x, y=digits.train.y, epochs=1,
                              score=lambda m: evaluate(m, digits.val, digits.task)["score"])
    q = compress.quantize(mlp, "ecqx", 4, lam=0.05, block=16, ref=ref, train=train)
    assert all(r.block == 16 and r.method == "ecqx" for r in q.records.values())
    for name, r in q.records.items():
        np.testing.assert_array_equal(dict(q.model.named_modules())[name].weight.detach().numpy(), r.dequantize())
