"""Criteria from activation statistics: APoZ, HRank and mean activation magnitude (magnitude gating)."""

from __future__ import annotations

import torch
from torch import nn

from edgewise.base.device import device_of
from edgewise.compress.criteria.base import Criterion
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.taps import capture_outputs


@torch.no_grad()
def _activations(model: nn.Module, names: set[str], ref: ReferenceSamples):
    """Yield per batch: ReLU of each layer's (batch-normalised) output, and the chosen classes' mask at its size."""
    model = model.eval()
    size = ref.batch_for(model)
    with capture_outputs(model, names) as out:
        for x, y in ref.batches(device_of(model), size):
            model(x)
            yield {name: (t.clamp(min=0), ref.spatial_mask(y, t.shape[2:])) for name, t in out.items()}


def _masked_mean(model: nn.Module, names: set[str], ref: ReferenceSamples, statistic) -> dict[str, torch.Tensor]:
    """Per channel, the mean of statistic(activation) over the chosen classes' samples or pixels."""
    total: dict[str, torch.Tensor] = {}
    weight: dict[str, torch.Tensor] = {}
    for batch in _activations(model, names, ref):
        for name, (act, mask) in batch.items():
            m = mask.expand(act.shape[0], 1, *act.shape[2:])
            total[name] = total.get(name, 0) + (statistic(act) * m).transpose(0, 1).flatten(1).sum(1)
            weight[name] = weight.get(name, 0) + m.sum()
    return {name: total[name] / weight[name].clamp(min=1) for name in total}


class APoZCriterion(Criterion):
    """APoZ (Hu et al. 2016): score = 1 - average percentage of zeros of the channel's ReLU output."""

    name = "apoz"

    def scores(self, model: nn.Module, names: set[str], ref: ReferenceSamples) -> dict[str, torch.Tensor]:
        return _masked_mean(model, names, ref, lambda act: (act > 0).float())


class HRankCriterion(Criterion):
    """HRank (Lin et al., CVPR 2020): mean matrix rank of each channel's H x W feature maps.

    Flat features (linear layers, 1x1 maps) have rank 1 where non-zero, 0 otherwise. A class
    restriction keeps only the samples that contain the chosen classes.
    """

    name = "hrank"

    def scores(self, model: nn.Module, names: set[str], ref: ReferenceSamples) -> dict[str, torch.Tensor]:
        ranks: dict[str, torch.Tensor] = {}
        count = 0
        for batch in _activations(model, names, ref):
            keep = None
            for name, (act, mask) in batch.items():
                if keep is None:
                    keep = mask.flatten(1).amax(1) > 0
                    count += int(keep.sum())
                act = act[keep]
                if act.dim() == 4 and act.shape[2] * act.shape[3] > 1:
                    rank = torch.linalg.matrix_rank(act.double()).to(torch.float32)
                else:
                    rank = (act.flatten(2).abs().amax(2) > 0).float() if act.dim() > 2 else (act > 0).float()
                ranks[name] = ranks.get(name, 0) + rank.sum(0)
        return {name: r / max(count, 1) for name, r in ranks.items()}


class ActivationCriterion(Criterion):
    """Mean ReLU activation of the channel over the chosen classes' samples or pixels ("magnitude gating")."""

    name = "activation"

    def scores(self, model: nn.Module, names: set[str], ref: ReferenceSamples) -> dict[str, torch.Tensor]:
        return _masked_mean(model, names, ref, lambda act: act)
