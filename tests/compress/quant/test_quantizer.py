import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise import compress
from edgewise.board.errors import UserError
from edgewise.compress.quant.ecq import assign
from edgewise.compress.quant.grid import ecq_grid
from edgewise.zoo.models import build_model


def test_ecq_grid_steps_and_sides():
    w = torch.linspace(-1, 1, 1001)
    step, qmin, qmax = ecq_grid(w, 4)
    assert step == pytest.approx(float(torch.quantile(w.abs().double(), 0.999)) / 7)
    assert qmax - qmin == 15 and qmin <= 0 <= qmax
    _, qmin_u, qmax_u = ecq_grid(w.abs(), 4)
    assert (qmin_u, qmax_u) == (0, 15)
    assert ecq_grid(torch.cat([w, torch.full((50,), 0.9)]), 4)[1:] == (-7, 8)  # positive side dominates
    assert ecq_grid(torch.cat([w, torch.full((50,), -0.9)]), 4)[1:] == (-8, 7)


def test_ecq_with_lambda_zero_is_nearest_grid():
    torch.manual_seed(1)
    w = torch.randn(500) * 0.1
    step, qmin, qmax = ecq_grid(w, 4)
    levels, _, _ = assign(w, step, qmin, qmax, lam=0.0)
    nearest = torch.clamp(torch.round(w / step), qmin, qmax).to(torch.int8)
    # ties aside, argmin over squared distances is rounding
    assert torch.equal(levels, nearest)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), lams=st.lists(st.floats(0, 5), min_size=2, max_size=4))
def test_larger_lambda_never_lowers_sparsity(seed, lams):
    w = torch.randn(300, generator=torch.Generator().manual_seed(seed)) * 0.05
    step, qmin, qmax = ecq_grid(w, 4)
    sparsities = [float((assign(w, step, qmin, qmax, lam=lam)[0] == 0).float().mean()) for lam in sorted(lams)]
    assert sparsities == sorted(sparsities)


def test_ecqx_keeps_relevant_weights_out_of_the_zero_cluster():
    torch.manual_seed(2)
    w = torch.randn(2000) * 0.1
    step, qmin, qmax = ecq_grid(w, 4)
    lam = 0.02
    ecq_levels, _, _ = assign(w, step, qmin, qmax, lam=lam)
    zeroed_by_ecq = (ecq_levels == 0) & (w.abs() > step / 2)  # would be non-zero without the entropy term
    relevance = torch.full_like(w, 0.05)
    relevance[zeroed_by_ecq] = 1.0
    ecqx_levels, info, _ = assign(w, step, qmin, qmax, lam=lam, relevance=relevance)
    rescued = zeroed_by_ecq & (ecqx_levels != 0)
    assert int(zeroed_by_ecq.sum()) > 0 and int(rescued.sum()) > 0
    # what ECQx zeroes is less relevant on average than what ECQ zeroes
    assert float(relevance[ecqx_levels == 0].mean()) < float(relevance[ecq_levels == 0].mean())
    assert info["sparsity_ecqx"] <= info["sparsity_ecq"] + 1e-9


@pytest.mark.parametrize("method", compress.QUANTIZERS)
def test_the_records_reproduce_the_quantized_model_exactly(method):
    torch.manual_seed(0)
    model = build_model("lenet", (1, 8, 8), 10).eval()
    ref = compress.ReferenceSamples(torch.rand(16, 1, 8, 8), torch.arange(16) % 10, output="logit")
    q = compress.quantize(model, method, 4, ref=ref, **({} if method == "uniform" else {"lam": 0.1}))
    fresh = build_model("lenet", (1, 8, 8), 10).eval()
    compress.load_decoded(fresh, q.records, compress.floats_of(q.model, q.records))
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(fresh(x), q.model(x))
    for name, record in q.records.items():
        weight = dict(q.model.named_modules())[name].weight.detach().numpy()
        assert np.array_equal(weight, record.dequantize())
        assert len(np.unique(record.levels)) <= 16


def test_quantize_refuses_bad_settings():
    model = build_model("mlp", (1, 8, 8), 10)
    with pytest.raises(UserError, match="unknown quantization method"):
        compress.quantize(model, "kmeans")
    with pytest.raises(UserError, match=r"2\.\.8"):
        compress.quantize(model, "ecq", bits=12)
    with pytest.raises(UserError, match="lambda"):
        compress.quantize(model, "ecq", lam=-1)
    with pytest.raises(UserError, match="reference samples"):
        compress.quantize(model, "ecqx")


def test_quantization_aware_training_improves_a_hard_assignment(digits_mlp):
    import functools

    from edgewise.compress.quant.qat import train_quantized
    from edgewise.zoo.training import evaluate

    trained, data = digits_mlp
    score = lambda m: evaluate(m, data.val, data.task)["score"]  # noqa: E731
    ptq = compress.quantize(trained.module, "ecq", 4, lam=0.5)
    train = functools.partial(train_quantized, x=data.train.x, y=data.train.y, score=score, epochs=4, patience=4)
    qat = compress.quantize(trained.module, "ecq", 4, lam=0.5, train=train)
    assert score(qat.model) > score(ptq.model)
    assert qat.history["epochs_run"] >= 1 and len(qat.history["sparsity"]) == qat.history["epochs_run"]
    assert qat.summary()["sparsity"] > 0.5


def test_ecqx_takes_relevance_at_the_output_named_as_pruning_does():
    """A text detector returns a per-pixel map (N, 1, H, W): ECQx seeds its relevance at its strongest pixels, by
    default or where `output` says (the map seen as (N, pixels, 1)), the same either way; a wrong name is refused."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 1),
                                torch.nn.Sigmoid()).eval()
    ref = compress.ReferenceSamples.for_detection(torch.rand(4, 3, 8, 8), detections=5)
    with pytest.raises(UserError, match="has no 'boxes'"):
        compress.quantize(model, "ecqx", 4, ref=ref, output="boxes")
    by_default = compress.quantize(model, "ecqx", 4, ref=ref)
    named = compress.quantize(model, "ecqx", 4, ref=ref, output=lambda out: out.flatten(2).transpose(1, 2))
    assert sorted(named.records) == ["0", "2"]
    assert named.history["assignment"]["0"]["beta"] is not None  # the relevance guarded the zero cluster
    for name, record in named.records.items():
        np.testing.assert_array_equal(record.levels, by_default.records[name].levels)
    assert not model[0]._forward_hooks and not named.model._forward_hooks


def test_ecq_per_channel_gives_each_output_channel_its_step_over_the_layers_levels(tmp_path):
    from torch import nn

    from edgewise import export

    torch.manual_seed(0)
    layer = nn.Linear(32, 8)
    with torch.no_grad():
        layer.weight.mul_(torch.logspace(-2, 0, 8)[:, None])  # rows 100x apart in scale, as trained layers' are
    model = nn.Sequential(layer).eval()
    per_layer = compress.quantize(model, "ecq", 4, lam=0.0)
    per_channel = compress.quantize(model, "ecqx", 4, lam=0.0, per_channel=True,
                                    ref=compress.ReferenceSamples(torch.randn(16, 32), torch.zeros(16).long()))
    record = per_channel.records["0"]
    assert record.axis == 0 and record.step.shape == (8,) and record.qmax - record.qmin == 15
    assert np.all(np.diff(record.step) > 0)
    small = slice(0, 4)  # the small rows: one step for the layer rounds most of them to zero
    error = [float((m.model[0].weight[small] - layer.weight[small]).norm()) for m in (per_layer, per_channel)]
    assert error[1] < error[0] / 3
    out = export.to_onnx(per_channel.model, torch.randn(1, 32), tmp_path / "q.onnx", per_channel.records)
    assert export.verify(out.path, per_channel.model, torch.randn(4, 32), quantized=True)["rel_diff"] < 1e-5
    with pytest.raises(UserError, match="per_channel and block"):
        compress.quantize(model, "ecq", 4, per_channel=True, block=16)


@pytest.mark.parametrize("method", ["ecq", "ecqx"])
def test_lambda_auto_picks_the_largest_lambda_within_the_output_budget_and_says_what_it_tried(method):
    """The fixed default (0.05) collapsed trained networks (PP-OCR's detector: 0.000); auto measures instead."""
    from edgewise.compress.quant.entropy_constrained import AUTO_SLACK, LAMBDA_LADDER

    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10, hidden=[32]).eval()
    ref = compress.ReferenceSamples(torch.rand(64, 1, 8, 8), torch.arange(64) % 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    auto = compress.quantize(model, method, 4, ref=ref, lam="auto")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the user's model is untouched
    trials, chosen = auto.history["lambda_search"], auto.history["lam"]
    assert [t["lambda"] for t in trials] == list(LAMBDA_LADDER[:len(trials)]) and trials[0]["lambda"] == 0.0
    limit = trials[0]["output_error"] * (1 + AUTO_SLACK)
    kept = [t["lambda"] for t in trials[1:] if t["output_error"] <= limit]
    assert chosen == (max(kept) if kept else 0.0) and chosen == trials[len(kept)]["lambda"]
    assert len(trials) == len(LAMBDA_LADDER) or trials[-1]["output_error"] > limit  # stops at the first past it
    direct = compress.quantize(model, method, 4, ref=ref, lam=chosen)  # the trials left the weights as they were
    for name, record in direct.records.items():
        assert np.array_equal(record.levels, auto.records[name].levels)


def test_lambda_auto_needs_samples_and_no_training():
    model = build_model("mlp", (1, 8, 8), 10, hidden=[8]).eval()
    with pytest.raises(UserError, match="lambda auto is chosen by measuring"):
        compress.quantize(model, "ecq", 4, lam="auto", rounding="nearest")
    with pytest.raises(UserError, match="lambda must be a number"):
        compress.quantize(model, "ecq", 4, lam="automatic")


def test_lambda_auto_is_measured_once_and_qat_trains_at_it(digits_mlp):
    import functools

    from pydantic import ValidationError

    from edgewise.compress.quant.qat import train_quantized
    from edgewise.stages.quantize_config import QuantizeConfig
    from edgewise.zoo.training import evaluate

    assert QuantizeConfig(method="ecq", train={"epochs": 2}, **{"lambda": "auto"}).quantizer_settings()["lam"] == "auto"
    trained, data = digits_mlp
    ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, 10)
    score = lambda m: evaluate(m, data.val, data.task)["score"]  # noqa: E731
    lams = []

    def train(*args, **kwargs):
        lams.append(kwargs["lam"])
        return train_quantized(*args, **kwargs, x=data.train.x, y=data.train.y, score=score, epochs=1)

    qat = compress.quantize(trained.module, "ecq", 4, lam="auto", ref=ref, train=train)
    assert lams == [qat.history["lam"]] and qat.history["lambda_search"]  # the measured lambda, trained at
    assert qat.history["post_training"]["rounding"] == "compensated" and qat.history["epochs_run"] == 1
    with pytest.raises(UserError, match="lambda auto"):
        compress.quantize(trained.module, "ecq", 4, lam="auto", train=functools.partial(train_quantized))
    with pytest.raises(ValidationError):
        QuantizeConfig(method="ecq", **{"lambda": "sometimes"})
