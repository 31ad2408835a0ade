import pytest
import torch
from torch import nn

from edgewise.compress.fold import fold_batchnorm
from edgewise.zoo.models import build_model


def _randomise_batchnorm(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize(("arch", "shape"), [("mlp", (1, 8, 8)), ("lenet", (1, 8, 8)), ("vgg", (1, 8, 8)),
                                             ("resnet", (3, 16, 16)), ("mobilenetv2", (3, 16, 16)),
                                             ("railnet", (3, 32, 32)), ("torchvision:resnet18", (3, 32, 32)),
                                             ("torchvision:mobilenet_v2", (3, 32, 32))])
def test_folding_keeps_the_outputs(arch, shape):
    torch.manual_seed(0)
    model = build_model(arch, shape, 10).eval()
    _randomise_batchnorm(model)
    x = torch.rand(3, *shape)
    folded, names = fold_batchnorm(model, x[:1])
    bn_count = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert len(names) == bn_count
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


def test_folding_formula_on_one_layer():
    conv, bn = nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2)
    conv.weight.data = torch.tensor([[[[2.0]]], [[[3.0]]]])
    bn.eval()
    bn.running_mean.copy_(torch.tensor([1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([4.0, 9.0]) - bn.eps)
    bn.weight.data = torch.tensor([1.0, 3.0])
    bn.bias.data = torch.tensor([0.5, -1.0])
    folded, _ = fold_batchnorm(nn.Sequential(conv, bn), torch.ones(1, 1, 1, 1))
    # gamma_fold = gamma / sqrt(var + eps) = (0.5, 1); beta_fold = beta - gamma_fold * mean = (0, -3)
    assert folded[0].weight.flatten().tolist() == pytest.approx([1.0, 3.0])
    assert folded[0].bias.tolist() == pytest.approx([0.0, -3.0])
