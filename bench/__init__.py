"""Benchmarks: latency, memory and energy of a model on a target, each measured, emulated, estimated or unavailable.

The package is also callable: `edgewise.bench("model.onnx", target="x86-host")` benchmarks a file
or deploy bundle (see edgewise.bench.benchmark.benchmark). Reports are rendered by the front door
(edgewise.report); this package measures.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, model: Any, target: str = "x86-host", config: Any = None, board_result: Any = None,
                 **options: Any) -> dict[str, Any]:
        from edgewise.bench.benchmark import benchmark

        return benchmark(model, target, config, board_result, **options)


sys.modules[__name__].__class__ = _CallableModule
