import pytest
import torch
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.relevance import layer_relevance, lrp_composite
from edgewise.zoo.models import build_model


@pytest.mark.parametrize(("arch", "first"), [("mlp", "layers.1"), ("lenet", "features.0"), ("vgg", "features.0")])
def test_first_layer_channel_relevances_sum_to_the_input_relevance(arch, first):
    torch.manual_seed(0)
    model = build_model(arch, (1, 8, 8), 10).eval()
    ref = ReferenceSamples(torch.rand(6, 1, 8, 8), torch.arange(6))
    relevance, input_relevance = layer_relevance(model, ref, {first}, absolute=False)
    assert float(relevance[first].sum()) == pytest.approx(float(input_relevance.sum()), rel=1e-4)


def test_output_relevance_is_one_per_sample_for_onehot():
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10).eval()
    ref = ReferenceSamples(torch.rand(5, 1, 8, 8), torch.arange(5))
    relevance, _ = layer_relevance(model, ref, {"layers.5"}, absolute=False)
    assert float(relevance["layers.5"].sum()) == pytest.approx(5.0)
    assert torch.equal(relevance["layers.5"][5:], torch.zeros(5))


def test_class_restriction_silences_other_classes():
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10).eval()
    ref = ReferenceSamples(torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2]), classes=(1,))
    relevance, input_relevance = layer_relevance(model, ref, {"layers.5"}, absolute=False)
    assert float(relevance["layers.5"].sum()) == pytest.approx(2.0)
    assert torch.equal(input_relevance[[0, 2, 3, 5]], torch.zeros(4))


def test_unknown_rules_are_refused():
    with pytest.raises(UserError, match="unknown LRP rule"):
        lrp_composite({"conv": "zminus"})
    with pytest.raises(UserError, match="unknown LRP layer kind"):
        lrp_composite({"pool": "flat"})


class PreActivation(nn.Module):
    """DenseNet's pattern: a BatchNorm merged into the conv before it, and one BEFORE its conv (not mergeable)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.bn2, self.conv2 = nn.BatchNorm2d(16), nn.Conv2d(16, 8, 3, padding=1, bias=False)
        self.head = nn.Linear(8, 4, bias=False)
        with torch.no_grad():
            for bn in (self.bn1, self.bn2):
                bn.weight.uniform_(0.5, 2.0)
                bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        a = torch.relu(self.bn1(self.conv1(x)))
        b = self.conv2(torch.relu(self.bn2(torch.cat([a, a.flip(1)], 1))))
        return self.head(b.mean((2, 3)))


def test_pre_activation_batchnorm_passes_relevance_and_conserves_it():
    torch.manual_seed(0)
    model = PreActivation().eval()
    ref = ReferenceSamples(torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1]))
    relevance, input_relevance = layer_relevance(model, ref, {"conv1", "conv2"}, absolute=False)
    # bn1 merges into conv1 (no bias: running means are 0), bn2 passes relevance through: every layer holds the
    # one unit of relevance each sample's class starts with
    assert float(relevance["conv2"].sum()) == pytest.approx(6.0, rel=1e-3)
    assert float(relevance["conv1"].sum()) == pytest.approx(6.0, rel=1e-3)
    assert float(input_relevance.sum()) == pytest.approx(6.0, rel=1e-3)
