"""Accuracy against pruning rate, per criterion: the curve and its area, the standard comparison of criteria."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from edgewise.compress.pruning import prune
from edgewise.compress.ranking import Ranking
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.repair import REPAIR, Repair


def area_under_curve(rates: Sequence[float], scores: Sequence[float]) -> float:
    """Trapezoid area under score(rate), divided by the rate span: 1.0 means no loss at any rate."""
    pairs = sorted(zip(rates, scores, strict=True))
    span = pairs[-1][0] - pairs[0][0]
    if span <= 0:
        return float(pairs[0][1])
    area = sum((r1 - r0) * (s0 + s1) / 2 for (r0, s0), (r1, s1) in itertools.pairwise(pairs))
    return area / span


def rate_curves(model: nn.Module, ref: ReferenceSamples, criteria: Sequence[str], rates: Sequence[float],
                score: Callable[[nn.Module], float], ranking: Ranking | None = None,
                finetune: Callable[[nn.Module], None] | None = None, repair: Repair | None = REPAIR
                ) -> dict[str, Any]:
    """Prune `model` one-shot at every rate with every criterion (each cut repaired as `repair` says, see
    compress.repair) and score each result.

    Returns per criterion its points (rate, score, channel rate, parameters, MACs) and the area
    under its curve. Rate 0 is the unpruned model, scored once and shared by every criterion.
    """
    base = score(model)
    curves: dict[str, Any] = {}
    for criterion in criteria:
        points = []
        for rate in rates:
            if rate == 0:
                points.append({"rate": 0.0, "score": base, "channel_rate": 0.0})
                continue
            result = prune(model, ref, criterion, rate, ranking=ranking, finetune=finetune, repair=repair)
            points.append({"rate": rate, "score": score(result.model), "channel_rate": result.channel_rate,
                           "params": result.after.params, "macs": result.after.macs})
        curves[criterion] = {"points": points,
                             "auc": area_under_curve([p["rate"] for p in points], [p["score"] for p in points])}
    return {"unpruned_score": base, "curves": curves}
