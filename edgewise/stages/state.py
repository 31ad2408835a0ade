"""What flows between a model's stages: its data, the float model, result rows and report sections."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from bench.report import Section
from compress.model_stats import measure_cost
from compress.size import float_bytes
from edgewise.console import console
from edgewise.errors import UserError
from edgewise.recipe import ModelEntry
from edgewise.rundir import RunDirectory, StageOutcome, StageWindow
from edgewise.zoo.dataset import Dataset, Split
from edgewise.zoo.training import evaluate


@dataclass
class ModelState:
    """One recipe model as it moves through the stages."""

    run: RunDirectory
    entry: ModelEntry
    data: Dataset
    model: nn.Module | None = None
    card: dict[str, Any] = field(default_factory=dict)
    model_path: Path | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    float_score: float | None = None
    current: nn.Module | None = None
    current_label: str = "float32"
    current_path: Path | None = None
    ladder: list[dict[str, Any]] = field(default_factory=list)
    quantized: Any = None
    bitstream_path: Path | None = None
    onnx_path: Path | None = None
    exported: list[tuple[dict[str, Any], Path, nn.Module]] = field(default_factory=list)
    pruned: tuple[dict[str, Any], nn.Module] | None = None
    pruned_path: Path | None = None
    integer_mlp: Any = None
    emulated_path: Path | None = None
    bench_records: list[dict[str, Any]] = field(default_factory=list)

    def stage(self, stage: str, params: dict[str, Any], inputs: Sequence[Path | None],
              compute: Callable[[StageWindow], dict[str, Any]]) -> StageOutcome:
        """Run (or reuse) one of this model's stages; take in the rows, ladder rungs and sections it returns.

        `compute` returns JSON-able values; the keys `rows`, `ladder` (size-ladder rungs) and
        `sections` (`Section.to_json()` values) are appended to the model's results whether the
        stage ran now or was reused from an earlier run of the same directory. The key of every
        stage also covers the model's data spec, seed and architecture, which all stages read.
        """
        context = {"data": self.entry.data.model_dump(mode="json"), "seed": self.entry.seed,
                   "arch": self.entry.arch, "arch_args": self.entry.arch_args}
        out = self.run.cached(stage, self.entry.name, params, [p for p in inputs if p is not None], compute, context)
        self.rows += out.values.get("rows", [])
        self.ladder += out.values.get("ladder", [])
        self.sections += [Section.from_json(s) for s in out.values.get("sections", [])]
        if out.reused:
            console.print(f"  {self.entry.name} {stage}: reused (inputs and parameters unchanged)")
        return out

    def advance(self, module: nn.Module, label: str, path: Path) -> None:
        """Make `module` (saved at `path`) the model the next compression stage starts from."""
        self.current, self.current_label, self.current_path = module, label, path

    def class_indices(self, classes: list[str | int]) -> tuple[int, ...]:
        """Resolve class names or indices against the data's classes; unknown ones are a user error."""
        out = []
        for c in classes:
            if isinstance(c, int) and 0 <= c < self.data.num_classes:
                out.append(c)
            elif isinstance(c, str) and c in self.data.class_names:
                out.append(self.data.class_names.index(c))
            else:
                raise UserError(f"model {self.entry.name}: unknown class {c!r}",
                                f"use one of {', '.join(self.data.class_names)} (or their indices)")
        return tuple(out)


def preprocessing(data: Dataset) -> dict[str, Any]:
    """What a deploy bundle tells the board about the model's input: range, layout, shape, task, classes."""
    return {"input_range": [0.0, 1.0], "layout": "NCHW", "input_shape": list(data.input_shape), "task": data.task,
            "classes": list(data.class_names)}


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


def score_model(state: ModelState, st: StageWindow | None, module: nn.Module, stage: str,
                size_bytes: int | None = None, classes: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Evaluate `module` on the test split, record its metrics in the stage window `st`, and return the result row.

    `size_bytes` is the stage's model size: float32 parameters and buffers unless the stage
    stores the weights another way (packed low-bit levels, a bitstream). Without a window (`st`
    None) only the score is computed and returned, for baselines.

    With `classes` the row's score is the mean IoU of those classes (segmentation) or the accuracy
    on their samples (classification): an expert is judged on what it is for.
    """
    data = state.data
    metrics = evaluate(module, data.test, data.task, data.class_names)
    cost = measure_cost(module, data.input_shape)
    score_name, score = metrics["score_name"], metrics["score"]
    if classes is not None:
        names = [data.class_names[c] for c in classes]
        score = class_score(module, data.test, data, classes)
        score_name = f"{'IoU' if data.task == 'segmentation' else 'accuracy'}[{','.join(names)}]"
        metrics["expert_score"] = score
    if st is None:  # a baseline for comparison, not a stage's result
        return {"score_name": score_name, "score": score}
    st.metrics.update(metrics, params=cost.params, macs=cost.macs)
    console.print(f"  {state.entry.name} {stage}: {score_name} {score:.4f}, {cost.params:,} parameters, "
                  f"{cost.macs:,} MACs")
    return {"model": state.entry.name, "stage": stage, "task": data.task, "score_name": score_name,
            "score": score, "params": cost.params, "macs": cost.macs,
            "size_bytes": float_bytes(module) if size_bytes is None else size_bytes}
