"""Model compression: structured pruning, batch-norm folding, 4-bit quantization and lossless coding."""

from edgewise.compress.codec import Bitstream, CodecError, decode, encode
from edgewise.compress.criteria import CRITERIA, Criterion, get_criterion
from edgewise.compress.detectors import DetectorHeads, yolo_scores
from edgewise.compress.experts import combine, derive_expert, expert_loss, expert_table, union
from edgewise.compress.fold import fold_batchnorm
from edgewise.compress.graph import ChannelGraph, PruningError
from edgewise.compress.model_stats import LayerCost, ModelCost, count_parameters, measure_cost
from edgewise.compress.pruning import Plan, PruneResult, apply_plan, prune
from edgewise.compress.quant import QUANTIZERS, Quantizer, get_quantizer, quantize
from edgewise.compress.quant.model import QuantizedModel, floats_of, load_decoded
from edgewise.compress.ranking import Ranking
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.schedules import predicted_remaining, simulated_remaining

__all__ = [
    "CRITERIA", "QUANTIZERS", "Bitstream", "ChannelGraph", "CodecError", "Criterion", "DetectorHeads", "LayerCost",
    "ModelCost",
    "Plan", "PruneResult", "PruningError", "QuantizedModel", "Quantizer", "Ranking", "ReferenceSamples", "apply_plan",
    "combine", "count_parameters", "decode", "derive_expert", "encode", "expert_loss", "expert_table", "floats_of",
    "fold_batchnorm", "get_criterion", "get_quantizer", "load_decoded", "measure_cost", "predicted_remaining",
    "prune", "quantize", "simulated_remaining", "union", "yolo_scores",
]
