"""The FantastIC4 baseline of a float version: its MLP with weights rounded to 4 bits, or nothing for other networks."""

import numpy as np
import torch
from torch import nn

from edgewise.base.grid import symmetric_levels
from edgewise.runtime import IntegerMLP
from edgewise.stages.emulate import rounded_records


def test_a_float_mlp_is_emulated_with_rounded_weights():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = np.random.default_rng(0).random((20, 1, 4, 4)).astype(np.float32)
    kernel = IntegerMLP.from_records(rounded_records(mlp), x)
    assert [layer.levels.shape for layer in kernel.layers] == [(8, 16), (3, 8)]
    np.testing.assert_array_equal(kernel.layers[0].levels, symmetric_levels(mlp[1].weight.detach().numpy(), 4)[0])
    with torch.no_grad():
        reference = mlp(torch.from_numpy(x)).numpy()
    assert np.corrcoef(kernel.run(x).ravel(), reference.ravel())[0, 1] > 0.95
    assert kernel.costs("fantastic4-asic")["total"]["energy_per_inference_j"] > 0


def test_a_network_with_convolutions_has_no_fantastic4_baseline():
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3))
    assert rounded_records(cnn) is None
