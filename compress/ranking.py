"""Ranking channel scores into the channels to remove: global or per layer, normalised, with floors and rounding."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from edgewise.board.errors import UserError

NORMALIZATIONS = ("none", "sum", "l2")
SCOPES = ("global", "layer")


@dataclass(frozen=True)
class Ranking:
    """How scores become removals.

    `scope`: one ranking over all groups (`global`) or a rate per group (`layer`);
    `normalization`: none, per-group sum or per-group L2 before a global ranking (None: the criterion's own);
    `min_channels`: never keep fewer channels in a group; `max_layer_rate`: never remove more than
    this share of a group's channels (global ranking with no normalisation would otherwise cut a
    layer of small scores to one channel and the network's output to a constant; 1.0 lifts the
    floor); `round_to`: keep the unit counts of groups wider than it multiples of it (the widths vector units
    run fastest at; a group of round_to units or fewer is cut to any count).
    """

    scope: str = "global"
    normalization: str | None = None
    min_channels: int = 1
    round_to: int | None = None
    max_layer_rate: float = 0.9

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise UserError(f"unknown ranking scope {self.scope!r}", f"use one of {', '.join(SCOPES)}")
        if self.normalization is not None and self.normalization not in NORMALIZATIONS:
            raise UserError(f"unknown normalisation {self.normalization!r}", f"use one of {', '.join(NORMALIZATIONS)}")
        if self.min_channels < 1:
            raise UserError(f"min_channels must be at least 1, got {self.min_channels}", "set min_channels >= 1")
        if not 0.0 < self.max_layer_rate <= 1.0:
            raise UserError(f"max_layer_rate must be in (0, 1], got {self.max_layer_rate}",
                            "give the largest share of a layer's channels that may go, e.g. 0.9 (1.0: no limit)")
        if self.round_to is not None and self.round_to < 1:
            raise UserError(f"round_to must be a positive integer, got {self.round_to}", "use e.g. 8 or 16, or none")


def normalize(scores: torch.Tensor, how: str) -> torch.Tensor:
    """Scale one group's scores: unchanged (`none`), by their sum (`sum`) or by their L2 norm (`l2`)."""
    scores = scores.to(torch.float64)
    if how == "sum":
        return scores / scores.sum().clamp(min=1e-300)
    if how == "l2":
        return scores / scores.norm().clamp(min=1e-300)
    return scores


def _ascending(scores: torch.Tensor) -> list[int]:
    # ties broken by index so that equal scores give the same plan on every run
    return sorted(range(len(scores)), key=lambda i: (float(scores[i]), i))


def _floor_for(original: int, ranking: Ranking) -> int:
    kept_share = math.ceil(round((1.0 - ranking.max_layer_rate) * original, 9))
    return min(original, max(ranking.min_channels, kept_share))


def _rounded_keep(keep: int, current: int, ranking: Ranking) -> int:
    # a group no wider than one multiple has no smaller multiple to keep: it is cut to any count
    if not ranking.round_to or current <= ranking.round_to:
        return keep
    return min(current, math.ceil(keep / ranking.round_to) * ranking.round_to)


def plan_removal(scores: dict[str, torch.Tensor], original: dict[str, int], rate: float, ranking: Ranking,
                 default_normalization: str = "none", width: dict[str, int] | None = None) -> dict[str, list[int]]:
    """Unit indices (in each group's current numbering) to remove so that `rate` of the original channels go.

    `scores` holds each group's current units (a channel, or a channel in every block of a grouped
    layer: `width` channels per unit, default 1); `original` their counts before any pruning, so
    an iterative schedule can call this with a growing rate. Global ranking removes the lowest
    normalised scores across groups until `rate` of all channels are gone; per-layer ranking
    removes floor(rate x original) per group. Both respect `min_channels` and `max_layer_rate`;
    `round_to` then keeps back the best removed units until each group's count is a multiple of it (groups
    wider than round_to units).
    """
    if not 0.0 <= rate < 1.0:
        raise UserError(f"pruning rate must be in [0, 1), got {rate}", "give a fraction such as 0.5")
    how = ranking.normalization or default_normalization
    current = {g: len(s) for g, s in scores.items()}
    removal: dict[str, list[int]] = {g: [] for g in scores}
    if ranking.scope == "layer":
        for g, s in scores.items():
            target_keep = max(_floor_for(original[g], ranking), original[g] - math.floor(rate * original[g]))
            n_remove = max(0, current[g] - target_keep)
            removal[g] = _ascending(s)[:n_remove]
    else:
        width = width or {}
        total_original = sum(c * width.get(g, 1) for g, c in original.items())
        kept_target = total_original - round(rate * total_original)
        n_remove = sum(c * width.get(g, 1) for g, c in current.items()) - kept_target
        candidates = sorted(
            ((float(v), g, i) for g, s in scores.items() for i, v in enumerate(normalize(s, how))),
            key=lambda t: (t[0], t[1], t[2]),
        )
        for _, g, i in candidates:
            # a unit counts as the channels it removes; the last one may overshoot by less than its width
            if n_remove <= 0:
                break
            if current[g] - len(removal[g]) > _floor_for(original[g], ranking):
                removal[g].append(i)
                n_remove -= width.get(g, 1)
    for g, removed in removal.items():
        keep = _rounded_keep(current[g] - len(removed), current[g], ranking)
        give_back = keep - (current[g] - len(removed))
        if give_back > 0:
            # the removed channels are in ascending score order: give back the best of them
            removal[g] = removed[:len(removed) - give_back]
    return {g: sorted(r) for g, r in removal.items()}


def adaptive_removal(scores: dict[str, torch.Tensor], original: dict[str, int], sf: float,
                     ranking: Ranking) -> dict[str, list[int]]:
    """Seed 002's threshold per group: remove channels scoring below median x SF^(C0/Ct) of the remaining ones."""
    if not 0.0 < sf < 1.0:
        raise UserError(f"sparsification factor SF must be in (0, 1), got {sf}", "use e.g. 0.3 to 0.9")
    removal = {}
    for g, s in scores.items():
        threshold = float(s.to(torch.float64).median()) * sf ** (original[g] / len(s))
        below = [i for i in _ascending(s) if float(s[i]) < threshold]
        room = len(s) - _floor_for(original[g], ranking)
        removal[g] = sorted(below[:max(0, room)])
    return removal
