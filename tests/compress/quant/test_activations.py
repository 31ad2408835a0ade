import functools

import pytest
import torch
from torch import nn

from edgewise import compress
from edgewise.board.errors import UserError
from edgewise.compress.quant.activations import fake_quantize, fake_quantized_activations


def test_fake_quantization_rounds_onto_the_kernels_grid_and_passes_the_gradient_straight_through():
    x = torch.tensor([0.0, 0.1, 0.26, 0.5, 2.0], requires_grad=True)
    q = fake_quantize(x, 1.0, 2)  # unsigned 2-bit: levels 0, 1/3, 2/3, 1; 2.0 clips to 1
    assert torch.allclose(q, torch.tensor([0.0, 0.0, 1 / 3, 2 / 3, 1.0]))
    q.sum().backward()
    assert torch.equal(x.grad, torch.ones(5))
    signed = fake_quantize(torch.tensor([-1.0, 0.4, 1.0]), 1.0, 3)  # symmetric: steps of 1/3
    assert torch.allclose(signed, torch.tensor([-1.0, 1 / 3, 1.0]))


def test_layers_see_quantized_inputs_only_inside_the_block():
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    x = torch.rand(5, 4)
    with fake_quantized_activations({"fc": layer}, bits=2) as ranges:
        inside = layer(x)
    assert ranges["fc"] == pytest.approx(float(x.max()))
    assert torch.allclose(inside, layer(fake_quantize(x, float(x.max()), 2)))
    assert torch.equal(layer(x), nn.functional.linear(x, layer.weight, layer.bias))  # hooks gone
    with pytest.raises(UserError, match=r"outside 2\.\.16"), fake_quantized_activations({"fc": layer}, bits=1):
        pass


def test_qat_trains_with_8_bit_activations_and_returns_a_plain_model(digits_mlp):
    from edgewise.compress.quant.qat import train_quantized
    from edgewise.zoo.training import evaluate

    trained, data = digits_mlp
    score = lambda m: evaluate(m, data.val, data.task)["score"]  # noqa: E731
    train = functools.partial(train_quantized, x=data.train.x, y=data.train.y, score=score, epochs=2, patience=2,
                              activation_bits=8)
    q = compress.quantize(trained.module, "ecq", 4, lam=0.05, train=train)
    assert q.history["epochs_run"] >= 1 and score(q.model) > 0.9
    assert not any(m._forward_pre_hooks for m in q.model.modules())
