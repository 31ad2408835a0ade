"""Channel-importance criteria as plug-ins: LRP, gradient, Taylor, weight L1/L2, HRank, APoZ, activation, random."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from edgewise.base.errors import UserError
from edgewise.compress.criteria.activation import ActivationCriterion, APoZCriterion, HRankCriterion
from edgewise.compress.criteria.base import Criterion
from edgewise.compress.criteria.gradient import GradientCriterion, TaylorCriterion
from edgewise.compress.criteria.lrp import LRPCriterion
from edgewise.compress.criteria.magnitude import MagnitudeCriterion
from edgewise.compress.criteria.random import RandomCriterion

CRITERIA: dict[str, Callable[..., Criterion]] = {
    "lrp": LRPCriterion,
    "gradient": GradientCriterion,
    "taylor": TaylorCriterion,
    "l1": lambda: MagnitudeCriterion(p=1),
    "l2": lambda: MagnitudeCriterion(p=2),
    "hrank": HRankCriterion,
    "apoz": APoZCriterion,
    "activation": ActivationCriterion,
    "random": RandomCriterion,
}


def get_criterion(criterion: str | Criterion, **options: Any) -> Criterion:
    """Return the criterion named `criterion` built with `options` (or `criterion` itself if already built)."""
    if isinstance(criterion, Criterion):
        return criterion
    if criterion not in CRITERIA:
        raise UserError(f"unknown pruning criterion {criterion!r}", f"use one of {', '.join(CRITERIA)}")
    factory = CRITERIA[criterion]
    accepted = [n for n in inspect.signature(factory).parameters if n != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:  # named before building: a TypeError from deep inside would not say which options it takes
        raise UserError(f"criterion {criterion!r} takes no option {', '.join(unknown)}",
                        f"its options are {', '.join(accepted) or 'none'}")
    return factory(**options)


__all__ = ["CRITERIA", "Criterion", "get_criterion"]
