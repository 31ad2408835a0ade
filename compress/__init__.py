"""Model compression: structured pruning, batch-norm folding, 4-bit quantization and lossless coding.

Its public names are imported on first use (edgewise.base.lazy): `edgewise.compress.CRITERIA`
and `QUANTIZERS` list the plug-ins, and `register_criterion` / `register_quantizer` add one,
without importing torch.
"""

from typing import TYPE_CHECKING

from edgewise.base.lazy import lazy_attributes

if TYPE_CHECKING:  # the lazy names' definitions, for type checkers and editors (nothing imported at run time)
    from edgewise.compress.codec import Bitstream, CodecError, decode, encode
    from edgewise.compress.criteria import CRITERIA, Criterion, get_criterion, register_criterion
    from edgewise.compress.detectors import DetectorHeads, yolo_scores
    from edgewise.compress.experts import combine, derive_expert, expert_loss, expert_table, union
    from edgewise.compress.fold import fold_batchnorm
    from edgewise.compress.graph import ChannelGraph, PruningError
    from edgewise.compress.model_stats import LayerCost, ModelCost, count_parameters, measure_cost
    from edgewise.compress.pruning import Plan, Pruner, PruneResult, apply_plan, prune
    from edgewise.compress.quant import QUANTIZERS, Quantizer, get_quantizer, quantize, register_quantizer
    from edgewise.compress.quant.model import QuantizedModel, floats_of, load_decoded
    from edgewise.compress.ranking import Ranking
    from edgewise.compress.reference import ReferenceSamples
    from edgewise.compress.schedules import (
        SCHEDULES,
        Schedule,
        predicted_remaining,
        register_schedule,
        simulated_remaining,
    )

_WHERE = {
    "Bitstream": ".codec", "CodecError": ".codec", "decode": ".codec", "encode": ".codec",
    "CRITERIA": ".criteria", "Criterion": ".criteria", "get_criterion": ".criteria",
    "register_criterion": ".criteria",
    "DetectorHeads": ".detectors", "yolo_scores": ".detectors",
    "combine": ".experts", "derive_expert": ".experts", "expert_loss": ".experts", "expert_table": ".experts",
    "union": ".experts",
    "fold_batchnorm": ".fold",
    "ChannelGraph": ".graph", "PruningError": ".graph",
    "LayerCost": ".model_stats", "ModelCost": ".model_stats", "count_parameters": ".model_stats",
    "measure_cost": ".model_stats",
    "Plan": ".pruning", "PruneResult": ".pruning", "Pruner": ".pruning", "apply_plan": ".pruning", "prune": ".pruning",
    "QUANTIZERS": ".quant", "Quantizer": ".quant", "get_quantizer": ".quant", "quantize": ".quant",
    "register_quantizer": ".quant",
    "QuantizedModel": ".quant.model", "floats_of": ".quant.model", "load_decoded": ".quant.model",
    "Ranking": ".ranking",
    "ReferenceSamples": ".reference",
    "SCHEDULES": ".schedules", "Schedule": ".schedules", "register_schedule": ".schedules",
    "predicted_remaining": ".schedules", "simulated_remaining": ".schedules",
}
__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
__all__ = sorted(_WHERE)
