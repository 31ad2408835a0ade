"""Reference architectures of the zoo: small networks that span what edge compression meets.

Every builder takes the input shape (C, H, W) and the number of classes, so one architecture
serves the digits, the rail scenes and user data. Any torchvision architecture can be built by
name, always without pretrained weights (there is no network access at run time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgewise.board.errors import UserError, first_line
from edgewise.compress.modes import evaluating
from edgewise.zoo.architectures import ARCHITECTURES


class MLP(nn.Module):
    """Fully-connected classifier: Flatten, then (Linear, ReLU) per hidden layer, then Linear.

    The FantastIC4 accelerator targets exactly this class; `layers` is a flat `nn.Sequential`
    so the runtime can walk it layer by layer.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (256, 128)):
        super().__init__()
        modules: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            modules += [nn.Linear(width, h), nn.ReLU()]
            width = h
        modules.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LeNet(nn.Module):
    """LeNet-style CNN: three 3x3 conv/ReLU layers with two max-pools, then two linear layers."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, widths: Sequence[int] = (16, 32, 64),
                 fc: int = 128):
        super().__init__()
        c, h, w = input_shape
        c1, c2, c3 = widths
        self.features = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c3 * (h // 4) * (w // 4), fc), nn.ReLU(), nn.Linear(fc, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1, groups: int = 1,
                  kernel: int = 3, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout), act(),
    )


class VGG(nn.Module):
    """VGG-style CNN with BatchNorm: conv-BN-ReLU blocks, max-pools while the map is larger than 1x1."""

    def __init__(self, input_shape: Sequence[int], num_classes: int,
                 cfg: Sequence[int | str] = (32, 32, "M", 64, 64, "M", 128, 128, "M"), fc: int = 128):
        super().__init__()
        c, h, _ = input_shape
        layers: list[nn.Module] = []
        for item in cfg:
            if item == "M":
                if h >= 2:  # small inputs (8x8 digits) run out of resolution before the config ends
                    layers.append(nn.MaxPool2d(2))
                    h //= 2
                continue
            layers.extend(_conv_bn_relu(c, int(item)))
            c = int(item)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c, fc), nn.ReLU(), nn.Linear(fc, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut added before the ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet: a 3x3 stem, three stages of basic blocks (residual adds), global pooling."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, widths: Sequence[int] = (16, 32, 64),
                 blocks: int = 1):
        super().__init__()
        c = input_shape[0]
        self.stem = _conv_bn_relu(c, widths[0])
        stages: list[nn.Module] = []
        cin = widths[0]
        for i, width in enumerate(widths):
            for b in range(blocks):
                stages.append(BasicBlock(cin, width, stride=2 if (i > 0 and b == 0) else 1))
                cin = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion, 3x3 depthwise, linear 1x1 projection; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu(cin, hidden, kernel=1, act=nn.ReLU6))
        layers += [
            _conv_bn_relu(hidden, hidden, stride=stride, groups=hidden, act=nn.ReLU6),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2-style net: depthwise separable inverted-residual blocks for small inputs."""

    def __init__(self, input_shape: Sequence[int], num_classes: int,
                 setting: Sequence[Sequence[int]] = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 1, 1)),
                 stem: int = 16, last: int = 128):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu(input_shape[0], stem, act=nn.ReLU6)]
        cin = stem
        for t, c, n, s in setting:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_conv_bn_relu(cin, last, kernel=1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: parallel 1x1, dilated 3x3 and image-pooling branches, concatenated."""

    def __init__(self, cin: int, cout: int, dilations: Sequence[int] = (2, 4)):
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_relu(cin, cout, kernel=1)])
        self.branches.extend(_conv_bn_relu(cin, cout, dilation=d) for d in dilations)
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.ReLU())
        self.project = _conv_bn_relu(cout * (len(dilations) + 2), cout, kernel=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pool(x).expand(-1, -1, x.shape[-2], x.shape[-1])
        return self.project(torch.cat([*(b(x) for b in self.branches), pooled], dim=1))


class RailNet(nn.Module):
    """DeepLabV3+-like segmentation net: a strided encoder, ASPP at 1/8, a skip from 1/2, and a decoder.

    Output logits have the input's spatial size for any input size (bilinear upsampling to the
    skip's and the input's size), so the same net serves 32x32 to 512x512 scenes.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, widths: Sequence[int] = (16, 32, 64),
                 aspp: int = 32, skip: int = 16):
        super().__init__()
        c = input_shape[0]
        w1, w2, w3 = widths
        self.stem = nn.Sequential(_conv_bn_relu(c, w1, stride=2), _conv_bn_relu(w1, w1))
        self.down = nn.Sequential(
            _conv_bn_relu(w1, w2, stride=2), _conv_bn_relu(w2, w2),
            _conv_bn_relu(w2, w3, stride=2), _conv_bn_relu(w3, w3, dilation=2),
        )
        self.aspp = ASPP(w3, aspp)
        self.skip = _conv_bn_relu(w1, skip, kernel=1)
        self.decoder = _conv_bn_relu(aspp + skip, aspp)
        self.classifier = nn.Conv2d(aspp, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.stem(x)
        high = self.aspp(self.down(low))
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        out = self.classifier(self.decoder(torch.cat([high, self.skip(low)], dim=1)))
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


class TorchvisionNet(nn.Module):
    """A torchvision architecture (no weights) adapted to the zoo's contract: a tensor in, logits out.

    Grey-scale inputs are repeated to the three channels torchvision expects; segmentation models
    return their `out` map instead of a dict.
    """

    def __init__(self, body: nn.Module, repeat_gray: bool, segmentation: bool):
        super().__init__()
        self.body = body
        self.repeat_gray = repeat_gray
        self.segmentation = segmentation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat_gray:
            x = x.expand(-1, 3, -1, -1)
        out = self.body(x)
        return out["out"] if self.segmentation else out


def _segmentation_names() -> set[str]:
    import torchvision

    return set(torchvision.models.list_models(module=torchvision.models.segmentation))


def build_torchvision(name: str, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Build torchvision architecture `name` with random weights for `input_shape` and `num_classes`."""
    import torchvision

    if name not in torchvision.models.list_models():
        raise UserError(
            f"unknown torchvision architecture {name!r}",
            "pick one of torchvision.models.list_models(), e.g. torchvision:resnet18",
        )
    channels = input_shape[0]
    if channels not in (1, 3):
        raise UserError(
            f"torchvision:{name} takes 3-channel images, the data has {channels} channels",
            "use a zoo architecture, or give the data 1 or 3 channels",
        )
    segmentation = name in _segmentation_names()
    kwargs: dict[str, object] = {"weights": None, "num_classes": num_classes}
    if segmentation:
        kwargs.update(weights_backbone=None, aux_loss=False)
    body = torchvision.models.get_model(name, **kwargs)
    return TorchvisionNet(body, repeat_gray=channels == 1, segmentation=segmentation)


def _user_class(arch: str, **kwargs: object) -> nn.Module:
    """An instance of the class `package.module:Class` names, built with `kwargs` (the recipe's arch_args)."""
    import importlib

    module_name, _, class_name = arch.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        module = cls(**kwargs)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"architecture {arch!r} cannot be imported: {first_line(exc)}",
                        "name a class of an installed package (or of a module on PYTHONPATH) as package.module:Class"
                        ) from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"{arch} cannot be built from arch_args {kwargs}: {first_line(exc)}",
                        "give arch_args its constructor takes") from None
    if not isinstance(module, nn.Module):
        raise UserError(f"{arch} builds a {type(module).__name__}, not a torch module", "name an nn.Module class")
    return module


def build_model(arch: str, input_shape: Sequence[int], num_classes: int, **kwargs: object) -> nn.Module:
    """Build architecture `arch` (a zoo name, `torchvision:<name>`, or an importable class `package.module:Class`
    built with `kwargs` alone: a class of the user's own knows its input and classes) for the given input and
    classes."""
    if ":" in arch and not arch.startswith("torchvision:"):
        return _user_class(arch, **kwargs)
    if arch.startswith("torchvision:"):
        if kwargs:
            raise UserError(f"{arch} takes no architecture arguments, got {sorted(kwargs)}",
                            "remove arch_args for torchvision architectures")
        module = build_torchvision(arch.split(":", 1)[1], input_shape, num_classes)
    elif arch not in ARCHITECTURES:
        raise UserError(f"unknown architecture {arch!r}",
                        f"use one of {', '.join(ARCHITECTURES)} or torchvision:<name>")
    else:
        if ARCHITECTURES[arch].images and len(input_shape) != 3:
            raise UserError(f"{arch} takes images (channels, height, width), and the data's samples are of shape "
                            f"{tuple(input_shape)}", "store x in the .npz as (samples, channels, height, width), or "
                            "use arch: mlp for flat samples")
        try:
            module = ARCHITECTURES[arch].builder()(tuple(input_shape), num_classes, **kwargs)
        except (TypeError, ValueError, RuntimeError) as exc:  # a wrong name, a negative width, a zero size
            raise UserError(f"bad arguments for architecture {arch!r} {kwargs}: {first_line(exc)}",
                            "check arch_args against the architecture's parameters (widths are positive "
                            "integers)") from exc
    _check_takes(module, arch, input_shape)
    return module


def _check_takes(module: nn.Module, arch: str, input_shape: Sequence[int]) -> None:
    """Run two zero samples through a freshly built `module`: an architecture that cannot take inputs of this shape
    (a ViT's 16x16 patches on 8x8 digits, a stride ladder that shrinks the image to nothing) is refused here, in one
    line, before any training starts."""
    try:
        with torch.no_grad(), evaluating(module):
            module(torch.zeros(2, *input_shape))
    except (RuntimeError, ValueError, AssertionError, IndexError) as exc:
        raise UserError(f"architecture {arch!r} cannot take inputs of shape {list(input_shape)}: {first_line(exc)}",
                        "pick an architecture made for inputs this size, or resize the data (a folder's size)"
                        ) from None
