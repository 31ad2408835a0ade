import pytest
import torch

from edgewise.base.errors import UserError
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
