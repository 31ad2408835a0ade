"""Model compression: structured pruning, batch-norm folding, 4-bit quantization and lossless coding.

Its public names are imported on first use (edgewise.base.lazy): `edgewise.compress.CRITERIA`
and `QUANTIZERS` list the plug-ins, and `register_criterion` / `register_quantizer` add one,
without importing torch.
"""

from edgewise.base.lazy import lazy_attributes

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
