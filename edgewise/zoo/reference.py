"""The zoo's reference models: an architecture, the data it learns and how, under one name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgewise.zoo.data import DigitsData, RailData
from edgewise.zoo.training_config import TrainConfig


@dataclass(frozen=True)
class Reference:
    """A named, reproducible model of the zoo: trained on first use and cached."""

    name: str
    arch: str
    data: DigitsData | RailData
    description: str
    arch_args: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)


_RAIL_TRAIN = TrainConfig(epochs=12, batch_size=16, patience=4)

REFERENCES: dict[str, Reference] = {
    r.name: r
    for r in (
        Reference("digits-mlp", "mlp", DigitsData(), "MLP 64-256-128-10 on the digits (FantastIC4 class)",
                  {"hidden": [256, 128]}),
        Reference("digits-cnn", "lenet", DigitsData(), "LeNet-style CNN on the digits"),
        Reference("digits-vgg", "vgg", DigitsData(), "VGG-style CNN with BatchNorm on the digits"),
        Reference("digits-resnet", "resnet", DigitsData(), "CIFAR-style ResNet on the digits"),
        Reference("digits-mobilenetv2", "mobilenetv2", DigitsData(), "MobileNetV2-style net on the digits"),
        Reference("rail-net", "railnet", RailData(), "DeepLabV3+-like segmentation of 64x64 rail scenes",
                  train=_RAIL_TRAIN),
    )
}
