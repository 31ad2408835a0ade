import copy

import pytest
import torch
from torch import nn

from edgewise.compress.copying import model_copy


class Caching(nn.Module):
    """Keeps a tensor computed from its parameter after an eval-mode forward, as timm's LeViT keeps attention biases."""

    def __init__(self):
        super().__init__()
        self.biases, self.cache = nn.Parameter(torch.randn(4)), {}

    def forward(self, x):
        if not self.training:
            self.cache["bias"] = self.biases * 2
        return x + self.biases


def test_a_model_holding_a_computed_tensor_is_copied_with_that_tensor_detached():
    model = nn.Sequential(nn.Linear(4, 4), Caching()).eval()
    model(torch.randn(2, 4))
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(model)
    clone, plan = model_copy((model, {"a": [1, 2]}))
    cached = clone[1].cache["bias"]
    assert cached.grad_fn is None and torch.equal(cached, model[1].cache["bias"].detach())
    assert plan == {"a": [1, 2]} and clone[1].biases is not model[1].biases
    assert torch.equal(clone(torch.ones(1, 4)), model(torch.ones(1, 4)))
