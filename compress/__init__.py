"""Model compression: structured pruning, batch-norm folding, 4-bit quantization and lossless coding."""

from compress.model_stats import LayerCost, ModelCost, count_parameters, measure_cost

__all__ = ["LayerCost", "ModelCost", "count_parameters", "measure_cost"]
