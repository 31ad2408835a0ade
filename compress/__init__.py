"""Model compression: structured pruning, batch-norm folding, 4-bit quantization and lossless coding."""

from compress.criteria import CRITERIA, Criterion, get_criterion
from compress.experts import combine, derive_expert, expert_loss, expert_table, union
from compress.graph import ChannelGraph, PruningError
from compress.model_stats import LayerCost, ModelCost, count_parameters, measure_cost
from compress.pruning import Plan, PruneResult, apply_plan, prune
from compress.ranking import Ranking
from compress.reference import ReferenceSamples
from compress.schedules import predicted_remaining, simulated_remaining

__all__ = [
    "CRITERIA", "ChannelGraph", "Criterion", "LayerCost", "ModelCost", "Plan", "PruneResult", "PruningError",
    "Ranking", "ReferenceSamples", "apply_plan", "combine", "count_parameters", "derive_expert", "expert_loss",
    "expert_table",
    "get_criterion", "measure_cost", "predicted_remaining", "prune", "simulated_remaining", "union",
]
