"""Edgewise: compress neural networks with explainability, export them for edge hardware, measure the cost.

The public API, imported on first use (`import edgewise` itself imports no torch):

    import edgewise as ew
    result = ew.prune(model, ew.ReferenceSamples(x, y), "lrp", rate=0.5)      # channels physically removed
    quantized = ew.quantize(result.model, "ecqx", 4, ref=ew.ReferenceSamples(x, y))
    onnx_file = ew.to_onnx(quantized.model, x[:1], "model.onnx", quantized.records)
    record = ew.bench("model.onnx", target="x86-host")                          # latency, memory, energy
    run = ew.run("recipe.yaml")                                                  # a whole recipe

The kit's parts are subpackages of this one: edgewise.compress, edgewise.export,
edgewise.runtime, edgewise.bench, edgewise.board, edgewise.targets, with the base layer in edgewise.base.
"""

from importlib import metadata
from typing import TYPE_CHECKING

from edgewise.base.lazy import lazy_attributes

try:
    __version__ = metadata.version("edgewise")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

if TYPE_CHECKING:  # the lazy names' definitions, for type checkers and editors (nothing imported at run time)
    from edgewise import bench
    from edgewise.api import run
    from edgewise.base.records import QuantizedLayer
    from edgewise.board.errors import EdgewiseError, UserError
    from edgewise.compress import (
        Bitstream,
        DetectorHeads,
        Pruner,
        PruneResult,
        QuantizedModel,
        ReferenceSamples,
        decode,
        encode,
        fold_batchnorm,
        prune,
        quantize,
    )
    from edgewise.export import OnnxFile, open_session, to_onnx
    from edgewise.pipeline import RunResult
    from edgewise.recipe import Recipe, load_recipe
    from edgewise.runtime import IntegerMLP
    from edgewise.sweep import SweepResult

_WHERE = {
    # compress
    "prune": ".compress", "Pruner": ".compress", "quantize": ".compress", "fold_batchnorm": ".compress",
    "encode": ".compress", "decode": ".compress", "ReferenceSamples": ".compress", "PruneResult": ".compress",
    "QuantizedModel": ".compress", "Bitstream": ".compress", "DetectorHeads": ".compress",
    # export
    "to_onnx": ".export", "open_session": ".export", "OnnxFile": ".export",
    # bench: the subpackage is callable, edgewise.bench("model.onnx", target=...)
    "bench": ".bench",
    # runtime
    "IntegerMLP": ".runtime",
    # records and errors
    "QuantizedLayer": ".base.records", "EdgewiseError": ".board.errors", "UserError": ".board.errors",
    # recipes and runs
    "run": ".api", "Recipe": ".recipe", "load_recipe": ".recipe", "RunResult": ".pipeline",
    "SweepResult": ".sweep",
}
__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
__all__ = ["__version__", *sorted(_WHERE)]
