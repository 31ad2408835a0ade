"""Which torch layers carry the weights the kit scores, prunes, quantizes and counts, and where their channels lie."""

from __future__ import annotations

from torch import nn

# convolutions (plain, grouped, depthwise, transposed) and linear layers
WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                 nn.Linear)


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The conv and linear layers of `model` by name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)}


def output_axis(module: nn.Module) -> int:
    """The weight axis of the output channels: 1 for transposed convolutions (in, out, ...), else 0."""
    return 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
