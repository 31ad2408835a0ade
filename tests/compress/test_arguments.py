"""The Python API refuses what the command line refuses, with a clear error, and never changes the user's model:
one test per class of held-out finding (models, samples, labels, numbers, records, train mode)."""

import contextlib

import numpy as np
import pytest
import torch
from torch import nn

import edgewise as ew
from edgewise.bench.target_bench import BenchConfig
from edgewise.board.errors import UserError


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 10))


X = torch.rand(40, 64)
Y = torch.arange(40) % 10
REF = ew.ReferenceSamples(X, Y)
CALLS = {
    "prune": lambda model, ref: ew.prune(model, ref, "lrp", rate=0.3),
    "quantize": lambda model, ref: ew.quantize(model, "ecqx", 4, ref=ref),
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("model, words", [
    ("digits-mlp", "the model is str 'digits-mlp', not a torch.nn.Module"),
    ((nn.Linear(64, 10),), "the model is tuple (Linear(in_features=64"),
    (_mlp().to("meta"), "on the meta device"),
])
def test_what_is_not_a_loaded_module_is_refused(call, model, words):
    with pytest.raises(UserError, match=None) as caught:
        CALLS[call](model, REF)
    assert words in caught.value.problem and "\n" not in caught.value.problem


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("make, words", [
    (lambda: X.numpy(), "must be edgewise.ReferenceSamples, got ndarray"),
    (lambda: ew.ReferenceSamples(X.double(), Y), "the reference inputs are float64 but the model computes in float32"),
    (lambda: ew.ReferenceSamples(X.half(), Y), "are float16"),
    (lambda: ew.ReferenceSamples((X * 16).long(), Y), "does not run on the reference inputs (shape (64,) per sample, "
                                                      "int64)"),
    (lambda: ew.ReferenceSamples(X[:, :50], Y), "does not run on the reference inputs (shape (50,)"),
    (lambda: ew.ReferenceSamples(X.masked_fill(X > 0.99, float("nan")), Y), "hold NaN or infinite values"),
    (lambda: ew.ReferenceSamples(X, Y + 5), "the labels run from 5 to 14, but the model scores 10 classes"),
    (lambda: ew.ReferenceSamples(X, Y - 1), "the labels run from -1 to 8"),
])
def test_samples_the_model_cannot_take_are_refused_before_any_work(call, make, words):
    with pytest.raises(UserError) as caught:
        CALLS[call](_mlp(), make())
    assert words in caught.value.problem


@pytest.mark.parametrize("labels", [Y.float(), Y.bool(), Y.numpy()])
def test_class_labels_are_integer_tensors(labels):
    with pytest.raises(UserError, match=r"class indices|torch tensors"):
        ew.ReferenceSamples(X, labels)


@pytest.mark.parametrize("settings, words", [
    ({"bits": 4.5}, "bit width must be a whole number within 2..8, got 4.5"),
    ({"bits": True}, "got True"),
    ({"bits": 9}, "got 9"),
    ({"lam": float("nan")}, "lambda must be a number within 0..10, got nan"),
    ({"lam": float("inf")}, "got inf"),
    ({"lam": -0.1}, "got -0.1"),
    ({"rho": 0.0}, "rho must be above 0"),
    ({"p": 1.5}, "p must be a number within 0..1"),
])
def test_numbers_the_command_line_refuses_are_refused_by_the_api(settings, words):
    settings = {"bits": 4, **settings}
    with pytest.raises(UserError) as caught:
        ew.quantize(_mlp(), "ecqx", settings.pop("bits"), ref=REF, **settings)
    assert words in caught.value.problem


@pytest.mark.parametrize("records", [{}, None, {"fc": np.zeros((2, 2))}])
def test_encode_takes_records_only(records):
    with pytest.raises(UserError, match=r"records must be|not a QuantizedLayer"):
        ew.encode(records)


@pytest.mark.parametrize("batch", [0, -3, 1.5, True])
def test_bench_refuses_a_batch_that_is_not_one(tmp_path, batch):
    with pytest.raises(UserError, match="is not a batch size"):
        ew.bench(_mlp(), inputs=["x:1x64"], batch=batch)


def _modes(model):
    return [m.training for m in model.modules()]


@pytest.mark.parametrize("call", [
    lambda m, tmp: ew.fold_batchnorm(m, torch.rand(2, 1, 8, 8)),
    lambda m, tmp: ew.fold_batchnorm(m, torch.rand(2, 3, 8, 8)),  # fails: 3 channels
    lambda m, tmp: ew.to_onnx(m, torch.rand(1, 1, 8, 8), tmp / "m.onnx"),
    lambda m, tmp: ew.to_onnx(m, torch.rand(1, 2, 8, 8), tmp / "m.onnx"),  # fails
    lambda m, tmp: ew.bench(m, inputs=["x:1x1x8x8"], config=BenchConfig(iterations=2, duration_s=0.01,
                                                                         energy_window_s=0.01, energy_repeats=1)),
    lambda m, tmp: ew.prune(m, ew.ReferenceSamples(torch.rand(20, 1, 8, 8), torch.arange(20) % 10), "l1", rate=0.3),
    lambda m, tmp: ew.quantize(m, "uniform", 4),
])
def test_a_call_leaves_the_users_model_in_the_mode_it_had_also_when_it_fails(tmp_path, call):
    """fold_batchnorm, to_onnx and bench(module) left a model the user had in train mode in eval mode."""
    model = _cnn()
    model.train()
    model[1].eval()  # a mixed state, as a user freezing batch-norm statistics has it
    before = _modes(model)
    with contextlib.suppress(UserError):
        call(model, tmp_path)
    assert _modes(model) == before


def test_records_of_another_model_are_named_as_such(tmp_path):
    """export with another model's records said "layer layers.1 has no initializer layers.1.weight"."""
    records = ew.quantize(_mlp(), "uniform", 4).records
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(UserError, match=r"the records are of another model: 2 of their 2 layers \(0, 2\)"):
        ew.to_onnx(other, torch.rand(1, 64), tmp_path / "m.onnx", records)
    assert not (tmp_path / "m.onnx").exists()
