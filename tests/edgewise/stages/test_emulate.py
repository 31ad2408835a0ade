"""The FantastIC4 baseline of a float stage: its MLP with weights rounded to 4 bits, or nothing for other networks."""

import numpy as np
import torch
from torch import nn

from edgewise.recipe import EmulateConfig
from edgewise.stages.emulate import rounded_mlp
from runtime.onnx_reader import round_to_levels


def test_a_float_mlp_is_emulated_with_rounded_weights():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = np.random.default_rng(0).random((20, 1, 4, 4)).astype(np.float32)
    kernel = rounded_mlp(mlp, x, EmulateConfig())
    assert [layer.levels.shape for layer in kernel.layers] == [(8, 16), (3, 8)]
    np.testing.assert_array_equal(kernel.layers[0].levels, round_to_levels(mlp[1].weight.detach().numpy())[0])
    with torch.no_grad():
        reference = mlp(torch.from_numpy(x)).numpy()
    assert np.corrcoef(kernel.run(x).ravel(), reference.ravel())[0, 1] > 0.95
    assert kernel.costs("fantastic4-asic")["total"]["energy_per_inference_j"] > 0


def test_a_network_with_convolutions_has_no_fantastic4_baseline():
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3))
    assert rounded_mlp(cnn, np.zeros((2, 1, 4, 4), np.float32), EmulateConfig()) is None
