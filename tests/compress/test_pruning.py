import pytest
import torch
from torch import nn

from edgewise.base.errors import UserError
from edgewise.compress.criteria.base import Criterion
from edgewise.compress.graph import PruningError
from edgewise.compress.pruning import apply_plan, prune
from edgewise.compress.ranking import Ranking
from edgewise.modelio import load_model, save_model
from edgewise.zoo.models import build_model

ZOO = [("mlp", (1, 8, 8), 10, False), ("lenet", (1, 8, 8), 10, False), ("vgg", (1, 8, 8), 10, False),
       ("resnet", (3, 16, 16), 10, False), ("mobilenetv2", (3, 16, 16), 10, False),
       ("railnet", (3, 32, 32), 7, True)]
TORCHVISION = [("torchvision:resnet18", (3, 32, 32), 10, False), ("torchvision:mobilenet_v2", (3, 32, 32), 10, False),
               ("torchvision:deeplabv3_mobilenet_v3_large", (3, 64, 64), 7, True)]


@pytest.mark.parametrize(("arch", "shape", "classes", "seg"), ZOO + TORCHVISION)
def test_channels_are_physically_removed(arch, shape, classes, seg, reference, tmp_path):
    torch.manual_seed(0)
    model = build_model(arch, shape, classes).eval()
    ref = reference(shape, classes, segmentation=seg)
    result = prune(model, ref, "lrp", 0.5)
    pruned = result.model
    assert result.after.params < 0.7 * result.before.params
    assert result.after.macs < result.before.macs
    x = ref.x[:2]
    assert pruned(x).shape == model(x).shape
    # real tensors shrank: some weight has fewer output channels than the original
    shrunk = [r for r in result.layers if r["channels_after"] < r["channels_before"]]
    assert shrunk and all(r["weight_shape_after"][0] < r["weight_shape_before"][0] for r in shrunk
                          if "Transpose" not in r["kind"])
    assert sum(p.numel() for p in pruned.parameters()) == result.after.params
    # the pruned model is an ordinary module: it saves and reloads with its smaller shapes
    save_model(pruned, tmp_path / "p.pt", {})
    reloaded, _ = load_model(tmp_path / "p.pt")
    assert torch.equal(reloaded(x), pruned(x))
    assert model(x).shape == pruned(x).shape  # the original is left untouched
    assert sum(p.numel() for p in model.parameters()) == result.before.params


class Fixed(Criterion):
    """Scores each channel by its index (or the reverse), so the expected survivors are known."""

    name = "fixed"

    def __init__(self, reverse=False):
        self.reverse = reverse

    def scores(self, model, names, ref):
        modules = dict(model.named_modules())
        out = {}
        for n in names:
            c = modules[n].weight.shape[0]
            s = torch.arange(c, dtype=torch.float32) + 1
            out[n] = s.flip(0) if self.reverse else s
        return out


def test_the_top_scored_channels_are_kept(reference):
    model = build_model("mlp", (1, 8, 8), 10, hidden=[8, 6]).eval()
    ref = reference((1, 8, 8))
    result = prune(model, ref, Fixed(), 0.5, ranking=Ranking(scope="layer"))
    assert result.plan == {"layers.1": [4, 5, 6, 7], "layers.3": [3, 4, 5]}
    original = model.layers[1].weight
    assert torch.equal(result.model.layers[1].weight, original[[4, 5, 6, 7]])
    reverse = prune(model, ref, Fixed(reverse=True), 0.5, ranking=Ranking(scope="layer"))
    assert reverse.plan == {"layers.1": [0, 1, 2, 3], "layers.3": [0, 1, 2]}


def test_residual_coupled_layers_are_cut_at_identical_indices(reference):
    torch.manual_seed(0)
    model = build_model("resnet", (3, 16, 16), 10).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
    result = prune(model, reference((3, 16, 16)), "l1", 0.5)
    # the stem and the first stage's conv2 feed the same identity residual add: one group
    assert "stem.0" in result.plan
    kept = result.plan["stem.0"]
    pruned = result.model
    assert torch.equal(pruned.stem[1].weight, model.stem[1].weight[kept])
    assert torch.equal(pruned.stages[0].bn2.weight, model.stages[0].bn2.weight[kept])
    assert pruned.stages[0].conv2.weight.shape[0] == len(kept)


def test_output_layer_is_left_alone_and_min_channels_hold(reference):
    model = build_model("lenet", (1, 8, 8), 10).eval()
    result = prune(model, reference((1, 8, 8)), "random", 0.9, ranking=Ranking(scope="layer", min_channels=4))
    rows = {r["layer"]: r for r in result.layers}
    assert rows["classifier.3"]["channels_after"] == 10 and not rows["classifier.3"]["prunable"]
    assert all(r["channels_after"] >= 4 for r in result.layers)


def test_round_to_keeps_multiples(reference):
    model = build_model("vgg", (1, 8, 8), 10).eval()
    result = prune(model, reference((1, 8, 8)), "l1", 0.37, ranking=Ranking(round_to=8))
    for r in result.layers:
        if r["prunable"] and r["channels_after"] < r["channels_before"]:
            assert r["channels_after"] % 8 == 0


def test_ignored_layers_keep_their_channels(reference):
    model = build_model("lenet", (1, 8, 8), 10).eval()
    result = prune(model, reference((1, 8, 8)), "l1", 0.5, ignore=("features.0",))
    rows = {r["layer"]: r for r in result.layers}
    assert rows["features.0"]["channels_after"] == rows["features.0"]["channels_before"]
    with pytest.raises(PruningError, match="not found"):
        prune(model, reference((1, 8, 8)), "l1", 0.5, ignore=("features.99",))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_invalid_rates_are_refused(rate, reference):
    with pytest.raises(UserError, match=r"rate must be in \[0, 1\)"):
        prune(build_model("mlp", (1, 8, 8), 10), reference((1, 8, 8)), "l1", rate)


def test_unknown_criterion_and_schedule(reference):
    model, ref = build_model("mlp", (1, 8, 8), 10), reference((1, 8, 8))
    with pytest.raises(UserError, match="unknown pruning criterion 'saliencee'"):
        prune(model, ref, "saliencee", 0.5)
    with pytest.raises(UserError, match="unknown pruning schedule"):
        prune(model, ref, "l1", 0.5, schedule="weekly")


def test_grouped_convolution_is_named_in_the_error(reference):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2), nn.ReLU(),
                          nn.Flatten(), nn.LazyLinear(4))
    model(torch.rand(1, 3, 8, 8))
    with pytest.raises(PruningError, match="layer 2 is a grouped convolution"):
        prune(model, reference((3, 8, 8), classes=4), "l1", 0.5)


def test_iterative_schedule_steps_and_finetunes(reference):
    model = build_model("lenet", (1, 8, 8), 10).eval()
    calls = []
    result = prune(model, reference((1, 8, 8)), "l1", 0.2, schedule="iterative", step=0.05,
                   finetune=lambda m: calls.append(1), evaluate=lambda m: 0.5)
    assert len(calls) == 4 and [h["step"] for h in result.history] == [0, 1, 2, 3, 4]
    rates = [h["channel_rate"] for h in result.history]
    assert rates == sorted(rates) and rates[-1] == pytest.approx(0.2, abs=0.01)
    assert all(h["score"] == 0.5 for h in result.history)


def test_adaptive_schedule_converges_and_reports_the_prediction(reference):
    model = build_model("mlp", (1, 8, 8), 10, hidden=[100]).eval()
    result = prune(model, reference((1, 8, 8)), "random", schedule="adaptive", sf=0.3)
    prediction = result.prediction
    assert prediction["groups"][0]["c0"] == 100
    assert prediction["groups"][0]["predicted"] == pytest.approx(40.14, abs=0.01)
    assert 1 <= prediction["observed_total"] < 100
    assert result.history[-1]["channels"] == prediction["observed_total"]


def test_apply_plan_reproduces_a_pruning(reference):
    model = build_model("vgg", (1, 8, 8), 10).eval()
    ref = reference((1, 8, 8))
    result = prune(model, ref, "l2", 0.5)
    again = apply_plan(model, result.plan, ref.x[:1])
    x = ref.x[:4]
    assert torch.allclose(again(x), result.model(x))
