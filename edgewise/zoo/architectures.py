"""The zoo's architectures by name: the task each solves and where its builder lives (imported when one is built,
so a recipe's `arch` is checked and `edgewise zoo list` prints without torch)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Architecture:
    """A zoo architecture: its builder (`module:attribute`), the task it solves, a one-line description and whether
    it takes images (samples of shape channels x height x width) or samples of any shape (flattened)."""

    name: str
    path: str
    task: str
    description: str
    images: bool = True

    def builder(self) -> Callable[..., Any]:
        """The builder, builder(input_shape, num_classes, **arch_args) -> nn.Module, imported now."""
        module, _, attribute = self.path.partition(":")
        return getattr(importlib.import_module(module), attribute)


_MODELS = "edgewise.zoo.models"
ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("mlp", f"{_MODELS}:MLP", "classification", "fully-connected MLP (the FantastIC4 target class)",
                     images=False),
        Architecture("lenet", f"{_MODELS}:LeNet", "classification",
                     "LeNet-style CNN, three convs and two linear layers"),
        Architecture("vgg", f"{_MODELS}:VGG", "classification", "VGG-style CNN with BatchNorm"),
        Architecture("resnet", f"{_MODELS}:ResNet", "classification", "CIFAR-style ResNet with residual adds"),
        Architecture("mobilenetv2", f"{_MODELS}:MobileNetV2", "classification",
                     "MobileNetV2-style net, depthwise convs and inverted residuals"),
        Architecture("railnet", f"{_MODELS}:RailNet", "segmentation",
                     "DeepLabV3+-like encoder-decoder with ASPP and a skip connection"),
    )
}
