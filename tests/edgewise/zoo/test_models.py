import re

import pytest
import torch

from edgewise.board.errors import UserError
from edgewise.zoo.architectures import ARCHITECTURES
from edgewise.zoo.models import build_model


@pytest.mark.parametrize("arch", [a for a, spec in ARCHITECTURES.items() if spec.task == "classification"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_classifiers_give_one_logit_per_class(arch, shape):
    model = build_model(arch, shape, 10).eval()
    assert model(torch.rand(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 64, 48), (1, 40, 40)])
def test_railnet_logits_have_the_input_size(shape):
    model = build_model("railnet", shape, 7).eval()
    assert model(torch.rand(2, *shape)).shape == (2, 7, *shape[1:])


def test_mlp_hidden_sizes_are_configurable():
    model = build_model("mlp", (1, 8, 8), 10, hidden=[32, 16, 8])
    widths = [m.out_features for m in model.layers if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 16, 8, 10]


def test_resnet_and_mobilenet_contain_their_signature_blocks():
    resnet = build_model("resnet", (3, 32, 32), 10)
    assert any(type(m).__name__ == "BasicBlock" for m in resnet.modules())
    mobile = build_model("mobilenetv2", (3, 32, 32), 10)
    depthwise = [m for m in mobile.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels for m in depthwise)
    assert any(getattr(m, "residual", False) for m in mobile.modules())


@pytest.mark.parametrize(("name", "shape", "out"), [
    ("resnet18", (3, 32, 32), (2, 10)),
    ("mobilenet_v2", (1, 32, 32), (2, 10)),
    ("deeplabv3_mobilenet_v3_large", (3, 64, 64), (2, 10, 64, 64)),
])
def test_torchvision_architectures_build_without_weights(name, shape, out):
    model = build_model(f"torchvision:{name}", shape, 10).eval()
    assert model(torch.rand(2, *shape)).shape == out


def test_unknown_architectures_are_user_errors():
    with pytest.raises(UserError, match="unknown architecture 'nope'"):
        build_model("nope", (1, 8, 8), 10)
    with pytest.raises(UserError, match="unknown torchvision architecture"):
        build_model("torchvision:nope", (3, 32, 32), 10)
    with pytest.raises(UserError, match="bad arguments"):
        build_model("mlp", (1, 8, 8), 10, depth=3)


@pytest.mark.parametrize(("arch", "args", "words"), [
    ("mlp", {"hidden": [-5]}, "bad arguments for architecture 'mlp'"),
    ("torchvision:vit_b_16", {}, "cannot take inputs of shape [1, 8, 8]"),
])
def test_an_architecture_that_cannot_be_built_for_the_data_is_refused_before_training(arch, args, words):
    from edgewise.board.errors import UserError
    from edgewise.zoo.models import build_model

    with pytest.raises(UserError, match=re.escape(words)):
        build_model(arch, (1, 8, 8), 10, **args)


@pytest.mark.parametrize("arch", ["lenet", "vgg", "resnet", "mobilenetv2", "railnet"])
@pytest.mark.parametrize("shape", [(64,), (8, 8)])
def test_an_image_architecture_refuses_flat_samples_by_name(arch, shape):
    """An .npz whose x is 2-D trained... nothing: lenet ended in "bad arguments for architecture 'lenet' {}"."""
    with pytest.raises(UserError, match=rf"{arch} takes images \(channels, height, width\)"):
        build_model(arch, shape, 10)
    assert build_model("mlp", shape, 10)(torch.rand(2, *shape)).shape == (2, 10)
