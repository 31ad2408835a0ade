"""Model compression: structured pruning, batch-norm folding, 4-bit quantization and lossless coding."""

from compress.codec import Bitstream, CodecError, decode, encode
from compress.criteria import CRITERIA, Criterion, get_criterion
from compress.experts import combine, derive_expert, expert_loss, expert_table, union
from compress.fold import fold_batchnorm
from compress.graph import ChannelGraph, PruningError
from compress.model_stats import LayerCost, ModelCost, count_parameters, measure_cost
from compress.pruning import Plan, PruneResult, apply_plan, prune
from compress.quant.quantizer import METHODS, QuantizedModel, floats_of, load_decoded, quantize
from compress.ranking import Ranking
from compress.reference import ReferenceSamples
from compress.schedules import predicted_remaining, simulated_remaining

__all__ = [
    "CRITERIA", "METHODS", "Bitstream", "ChannelGraph", "CodecError", "Criterion", "LayerCost", "ModelCost", "Plan",
    "PruneResult", "PruningError", "QuantizedModel", "Ranking", "ReferenceSamples", "apply_plan", "combine",
    "count_parameters", "decode", "derive_expert", "encode", "expert_loss", "expert_table", "floats_of",
    "fold_batchnorm", "get_criterion", "load_decoded", "measure_cost", "predicted_remaining", "prune", "quantize",
    "simulated_remaining", "union",
]
