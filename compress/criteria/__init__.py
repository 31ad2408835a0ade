"""Channel-importance criteria as plug-ins: LRP, gradient, Taylor, weight L1/L2, HRank, APoZ, activation, random.

`CRITERIA` names them without importing them (a recipe's criterion is checked without torch);
`register_criterion` adds one (a Criterion subclass, or a function returning one), and other
packages add theirs as entry points of the group `edgewise.criteria`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgewise.base.registry import Registry, registrar
from edgewise.board.errors import UserError

if TYPE_CHECKING:
    from edgewise.compress.criteria.base import Criterion

_HERE = "edgewise.compress.criteria"
CRITERIA: Registry[Callable[..., Criterion]] = Registry("pruning criterion", "edgewise.criteria", {
    "lrp": f"{_HERE}.lrp:LRPCriterion",
    "gradient": f"{_HERE}.gradient:GradientCriterion",
    "taylor": f"{_HERE}.gradient:TaylorCriterion",
    "l1": f"{_HERE}.magnitude:l1",
    "l2": f"{_HERE}.magnitude:l2",
    "hrank": f"{_HERE}.activation:HRankCriterion",
    "apoz": f"{_HERE}.activation:APoZCriterion",
    "activation": f"{_HERE}.activation:ActivationCriterion",
    "random": f"{_HERE}.random:RandomCriterion",
}, product=f"{_HERE}.base:Criterion")
register_criterion = registrar(CRITERIA)


def get_criterion(criterion: str | Criterion, **options: Any) -> Criterion:
    """Return the criterion named `criterion` built with `options` (or `criterion` itself if already built)."""
    from edgewise.compress.criteria.base import Criterion

    if isinstance(criterion, Criterion):
        return criterion
    factory = CRITERIA.get(criterion)
    accepted = [n for n in inspect.signature(factory).parameters if n != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:  # named before building: a TypeError from deep inside would not say which options it takes
        raise UserError(f"criterion {criterion!r} takes no option {', '.join(unknown)}",
                        f"its options are {', '.join(accepted) or 'none'}")
    return CRITERIA.build(criterion, **options)


def __getattr__(name: str) -> Any:
    if name == "Criterion":  # the plug-in base class, imported with torch only when asked for
        from edgewise.compress.criteria.base import Criterion

        return Criterion
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CRITERIA", "Criterion", "get_criterion", "register_criterion"]
