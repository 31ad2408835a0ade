import pytest
import torch
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.criteria import CRITERIA, get_criterion
from edgewise.compress.layers import weight_layers
from edgewise.compress.reference import ReferenceSamples
from edgewise.zoo.models import build_model


@pytest.mark.parametrize("name", list(CRITERIA))
@pytest.mark.parametrize(("arch", "shape", "seg"), [("lenet", (1, 8, 8), False), ("railnet", (3, 32, 32), True)])
def test_every_criterion_scores_every_channel(name, arch, shape, seg):
    torch.manual_seed(0)
    model = build_model(arch, shape, 7).eval()
    x = torch.rand(8, *shape)
    y = torch.randint(0, 7, (8, *shape[1:]) if seg else (8,))
    ref = ReferenceSamples(x, y, "segmentation" if seg else "classification", batch_size=4)
    layers = weight_layers(model)
    scores = get_criterion(name).scores(model, set(layers), ref)
    assert set(scores) == set(layers)
    for layer, s in scores.items():
        assert s.shape == (layers[layer].weight.shape[0],)
        assert torch.isfinite(s).all() and (s >= 0).all()


def test_magnitude_is_the_filter_norm():
    model = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False))
    model[0].weight.data = torch.tensor([[[[3.0]]], [[[-4.0]]]])
    ref = ReferenceSamples(torch.zeros(1, 1, 2, 2), torch.zeros(1, dtype=torch.long))
    assert get_criterion("l1").scores(model, {"0"}, ref)["0"].tolist() == [3.0, 4.0]


def test_apoz_counts_zeros():
    model = nn.Sequential(nn.Linear(1, 2))
    model[0].weight.data = torch.tensor([[1.0], [-1.0]])
    model[0].bias.data.zero_()
    ref = ReferenceSamples(torch.tensor([[1.0], [2.0], [-1.0], [3.0]]), torch.zeros(4, dtype=torch.long))
    # channel 0 is positive on 3 of 4 samples, channel 1 on 1 of 4
    assert get_criterion("apoz").scores(model, {"0"}, ref)["0"].tolist() == [0.75, 0.25]


def test_hrank_is_the_mean_feature_map_rank():
    model = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False))
    model[0].weight.data = torch.tensor([[[[1.0]]], [[[0.0]]]])
    x = torch.eye(3).reshape(1, 1, 3, 3).repeat(2, 1, 1, 1)
    ref = ReferenceSamples(x, torch.zeros(2, dtype=torch.long))
    assert get_criterion("hrank").scores(model, {"0"}, ref)["0"].tolist() == [3.0, 0.0]


def test_taylor_is_activation_times_gradient():
    model = nn.Sequential(nn.Linear(1, 2, bias=False))
    model[0].weight.data = torch.tensor([[1.0], [2.0]])
    ref = ReferenceSamples(torch.tensor([[1.0]]), torch.tensor([0]))
    scores = get_criterion("taylor", objective="output").scores(model, {"0"}, ref)["0"]
    # J = output of class 0 = a_0, so dJ/da = (1, 0): a * g = (1, 0)
    assert scores.tolist() == [1.0, 0.0]


def test_class_restriction_changes_data_driven_scores():
    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10, hidden=[16]).eval()
    x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 10
    everything = ReferenceSamples(x, y)
    only_three = ReferenceSamples(x, y, classes=(3,))
    for name in ("lrp", "gradient", "activation"):
        crit = get_criterion(name)
        assert not torch.equal(crit.scores(model, {"layers.1"}, everything)["layers.1"],
                               crit.scores(model, {"layers.1"}, only_three)["layers.1"])


def test_random_is_seeded():
    model = build_model("mlp", (1, 8, 8), 10)
    ref = ReferenceSamples(torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))
    a = get_criterion("random", seed=1).scores(model, {"layers.1"}, ref)["layers.1"]
    b = get_criterion("random", seed=1).scores(model, {"layers.1"}, ref)["layers.1"]
    assert torch.equal(a, b)


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="criterion 'lrp' takes no option colour"):
        get_criterion("lrp", colour="red")
    with pytest.raises(UserError, match="objective"):
        get_criterion("gradient", objective="accuracy")


def test_an_option_a_criterion_does_not_take_is_named_with_the_ones_it_takes():
    with pytest.raises(UserError, match="criterion 'taylor' takes no option objectiv") as caught:
        get_criterion("taylor", objectiv="output")
    assert "objective" in caught.value.fix
    with pytest.raises(UserError, match="its options are none"):
        get_criterion("l1", p=3)
