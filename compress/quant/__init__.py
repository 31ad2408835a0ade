"""Weight quantizers as plug-ins (uniform, ECQ, ECQx at 2 to 8 bits), their registry, and `quantize` over a model.

`QUANTIZERS` names them without importing them, and `quantizer_settings` answers for the built-in
ones from the table below, so a recipe is checked without torch. `register_quantizer` adds one (a
Quantizer subclass; its settings are its constructor's keyword arguments), and other packages add
theirs as entry points of the group `edgewise.quantizers`.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from edgewise.base.lazy import lazy_attributes
from edgewise.base.registry import Registry, registrar
from edgewise.board.errors import UserError

if TYPE_CHECKING:  # with the lazy names' definitions, for type checkers and editors
    from edgewise.compress.quant.apply import quantize
    from edgewise.compress.quant.base import Quantizer
    from edgewise.compress.quant.model import QuantizedModel

_HERE = "edgewise.compress.quant"
QUANTIZERS: Registry[type[Quantizer]] = Registry("quantization method", "edgewise.quantizers", {
    "uniform": f"{_HERE}.uniform:UniformQuantizer",
    "ecq": f"{_HERE}.entropy_constrained:ECQQuantizer",
    "ecqx": f"{_HERE}.entropy_constrained:ECQxQuantizer",
}, product=f"{_HERE}.base:Quantizer")
register_quantizer = registrar(QUANTIZERS)

LAMBDA_LIMIT = 10.0
"""The largest entropy constraint ECQ takes: far past the point where every weight of a layer is zero."""

BUILTIN_SETTINGS = {"uniform": ("per_channel", "block", "rounding"), "ecq": ("lam", "block", "rounding", "per_channel"),
                    "ecqx": ("lam", "rho", "p", "block", "rounding", "per_channel")}
"""The built-in quantizers' settings (their constructors' keywords, which a test holds them to), known without
importing them."""


def quantizer_settings(method: str) -> tuple[str, ...]:
    """The settings (constructor keywords) of the quantizer registered as `method`."""
    if QUANTIZERS.is_builtin(method):
        return BUILTIN_SETTINGS[method]
    return tuple(n for n in inspect.signature(QUANTIZERS.get(method).__init__).parameters if n != "self")


def get_quantizer(method: str | Quantizer, **settings: Any) -> Quantizer:
    """The quantizer registered as `method`, built with `settings`, or `method` itself when already built. A setting
    the method does not take is an error naming it and the ones it takes: ignoring it would quantize otherwise
    than asked, without a word."""
    from edgewise.compress.quant.base import Quantizer

    if isinstance(method, Quantizer):
        if settings:
            raise UserError(f"settings {', '.join(sorted(settings))} were given with a built quantizer",
                            "give them to the quantizer's constructor instead")
        return method
    accepted = quantizer_settings(method)
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise UserError(f"quantizer {method!r} takes no setting {', '.join(unknown)}",
                        f"its settings are {', '.join(accepted) or 'none'}")
    return QUANTIZERS.build(method, **settings)


__getattr__, __dir__ = lazy_attributes(__name__, {"quantize": ".apply", "Quantizer": ".base",
                                                  "QuantizedModel": ".model"})
__all__ = ["LAMBDA_LIMIT", "QUANTIZERS", "QuantizedModel", "Quantizer", "get_quantizer", "quantize",
           "quantizer_settings",
           "register_quantizer"]
