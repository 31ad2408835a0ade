import torch
from torch import nn

from edgewise.compress.model_stats import count_parameters, measure_cost
from edgewise.zoo.models import build_model


def test_macs_of_known_layers():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),           # 8*8 outputs * 8 ch * 3*3*3 = 13824
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # 64 * 8 * 9 = 4608 (depthwise)
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),                # 5120
    )
    cost = measure_cost(model, (3, 8, 8))
    assert [layer.macs for layer in cost.layers] == [13824, 4608, 5120]
    assert cost.macs == 13824 + 4608 + 5120
    assert cost.params == count_parameters(model) == (8 * 27 + 8) + (8 * 9 + 8) + (512 * 10 + 10)


def test_transposed_convolution_macs():
    model = nn.ConvTranspose2d(4, 2, 2, stride=2)
    cost = measure_cost(model, (4, 5, 5))
    assert cost.macs == 25 * 4 * 4 * 2  # each input pixel of 4 channels scatters a 2x2 kernel to 2 channels


def test_mlp_cost_matches_its_layers():
    model = build_model("mlp", (1, 8, 8), 10, hidden=[32])
    cost = measure_cost(model, (1, 8, 8))
    assert cost.macs == 64 * 32 + 32 * 10
    assert [layer.name for layer in cost.layers] == ["layers.1", "layers.3"]
    assert model.training  # measuring does not change the mode
    assert torch.is_grad_enabled()
