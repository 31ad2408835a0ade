"""Scoring a stage's model on the test split: the result row, and class-restricted scores for experts."""

from __future__ import annotations

from typing import Any

from torch import nn

from edgewise.compress.model_stats import measure_cost
from edgewise.compress.size import float_bytes
from edgewise.core.console import console
from edgewise.core.rundir import StageWindow
from edgewise.stages.state import ModelState
from edgewise.zoo.agreement import metric_name
from edgewise.zoo.dataset import Dataset, Split
from edgewise.zoo.training import evaluate


def class_split(split: Split, task: str, classes: tuple[int, ...]) -> Split:
    """For classification, the samples of `classes`; segmentation keeps every scene (IoU is per class)."""
    if task == "segmentation":
        return split
    keep = sum((split.y == c) for c in classes).bool()
    return Split(split.x[keep], split.y[keep])


def class_score(module: nn.Module, split: Split, data: Dataset, classes: tuple[int, ...]) -> float:
    """Mean IoU of `classes` (segmentation) or accuracy on their samples (classification)."""
    if data.task == "segmentation":
        iou = evaluate(module, split, data.task, data.class_names)["iou"]
        values = [iou[data.class_names[c]] for c in classes if iou[data.class_names[c]] is not None]
        return sum(values) / len(values) if values else 0.0
    return evaluate(module, class_split(split, data.task, classes), data.task)["accuracy"]


def score_model(state: ModelState, st: StageWindow | None, module: nn.Module, label: str,
                size_bytes: int | None = None, classes: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Evaluate `module` on the test split, record its metrics in the stage window `st`, and return the result row.

    `size_bytes` is the version's model size: float32 parameters and buffers unless it stores
    the weights another way (packed low-bit levels, a bitstream). Without a window (`st` None)
    only the score is computed and returned, for baselines. With `classes` the row's score is the
    mean IoU of those classes (segmentation) or the accuracy on their samples (classification):
    an expert is judged on what it is for.
    """
    data = state.data
    metrics = evaluate(module, data.test, data.task, data.class_names)
    cost = measure_cost(module, data.input_shape, data.train.x.dtype)
    score_name, score = metric_name(data, metrics["score_name"]), metrics["score"]
    if classes is not None:
        names = [data.class_names[c] for c in classes]
        score = class_score(module, data.test, data, classes)
        score_name = f"{'IoU' if data.task == 'segmentation' else 'accuracy'}[{','.join(names)}]"
        metrics["expert_score"] = score
    if st is None:  # a baseline for comparison, not a stage's result
        return {"score_name": score_name, "score": score}
    st.metrics.update(metrics, params=cost.params, macs=cost.macs)
    console.print(f"  {state.entry.name} {label}: {score_name} {score:.4f}, {cost.params:,} parameters, "
                  f"{cost.macs:,} MACs")
    return {"model": state.entry.name, "stage": label, "task": data.task, "score_name": score_name,
            "score": score, "params": cost.params, "macs": cost.macs, "test_samples": len(data.test.x),
            "size_bytes": float_bytes(module) if size_bytes is None else size_bytes}
