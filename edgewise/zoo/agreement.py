"""Data without labels, labelled by a source model: every later score is agreement with that model.

The source's output on each sample says what it predicts, and its shape and values say how to compare: a
classifier's top-1 class, a segmenter's class per pixel, a recogniser's class per step (strings after greedy CTC
decoding), an embedding's direction (unit-norm rows: cosine similarity), and anything else the output itself
(1 - relative error); a one-stage detector's rows of boxes and scores are compared as detections (box F1).
`output_task` picks one of those from the outputs; a user names another with --score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.tasks import OUTPUT_TASKS
from edgewise.zoo.boxes import detections
from edgewise.zoo.dataset import Dataset, Split
from edgewise.zoo.training import predict

SCORES = ("classification", "segmentation", "sequence", "embedding", "boxes", "regression")
"""The tasks a source's outputs can label data for (the --score names)."""
METRICS = {"classification": "top-1 agreement", "segmentation": "mIoU agreement", "sequence": "sequence agreement",
           "embedding": "cosine to source", "boxes": "box F1 agreement", "regression": "1 - rel. error to source"}
"""Each agreement's name in a table's metric column."""
DESCRIPTIONS = {"classification": "top-1 agreement with the source model",
                "segmentation": "mIoU against the source model's per-pixel classes",
                "sequence": "share of sequences equal to the source model's (greedy CTC)",
                "embedding": "cosine similarity to the source model's embeddings",
                "boxes": "box F1 against the source model's detections (score 0.25, IoU 0.5)",
                "regression": "1 - error relative to the source model's outputs"}


Reference = Callable[[torch.Tensor], torch.Tensor]
"""The source model's scored output as a function of inputs."""


def onnx_reference(path: str | Path) -> Reference:
    """The ONNX file at `path`, run exactly (no graph optimisation) in ONNX Runtime, as a source."""
    from edgewise.board.session import open_session, session_runner

    run = session_runner(open_session(path, fast=False))
    return lambda x: torch.from_numpy(run(x.numpy()))


def module_reference(module: nn.Module) -> Reference:
    """A torch module, in eval mode and batches (zoo.training.predict), as a source."""
    return lambda x: predict(module, x)


def _distributions(out: torch.Tensor) -> bool:
    """Whether the last axis of `out` holds probabilities or log-probabilities (each row sums to 1 after exp)."""
    sums = out.sum(-1)
    log_sums = out.float().exp().sum(-1)
    return bool(((sums - 1).abs() < 1e-3).all() and (out >= 0).all()) or bool(((log_sums - 1).abs() < 1e-3).all())


def output_task(out: torch.Tensor) -> str:
    """The task a source's outputs `out` (samples first) label data for: (N, K) logits: classification, or embedding
    when every row has unit length; (N, steps, classes) distributions: sequence; (N, values, anchors) or (N, anchors,
    values) with anchors far more than values (at least 5): boxes, unless values come first and the first four (a
    box) are negative: (N, steps, classes) logits with classes far more than steps, a sequence; (N, K, H, W) with
    K > 1: segmentation; anything else: regression."""
    if out.dim() == 2 and out.shape[1] > 1:
        unit = (out.float().norm(dim=1) - 1).abs() < 1e-3
        return "embedding" if bool(unit.all()) else "classification"
    if out.dim() == 3 and out.shape[2] > 1 and _distributions(out):
        return "sequence"
    if out.dim() == 3 and min(out.shape[1:]) >= 5 and max(out.shape[1:]) >= 4 * min(out.shape[1:]):
        # a row of box and scores per anchor, anchors far outnumbering the values; YOLOv8's decoded boxes (values
        # first) are never negative, where a CTC head's logits per step (steps far outnumbered by classes) mostly are
        if out.shape[1] < out.shape[2] and float((out[:, :4] < 0).float().mean()) > 0.01:
            return "sequence"
        return "boxes"
    if out.dim() == 4 and out.shape[1] > 1:
        return "segmentation"
    return "regression"


def _detects(out: torch.Tensor) -> bool:
    """Whether a detector's output `out` holds any detection above the score threshold."""
    return any(len(boxes) for boxes, _ in detections(out))


def _labels(out: torch.Tensor, task: str) -> torch.Tensor:
    if task in OUTPUT_TASKS:
        return out.float()
    return out.argmax(-1 if task == "sequence" else 1)


def _check_fits(out: torch.Tensor, task: str) -> None:
    shapes = {"classification": 2, "segmentation": 4, "sequence": 3, "boxes": 3}
    if task in shapes and out.dim() != shapes[task]:
        raise UserError(f"--score {task} needs outputs of rank {shapes[task]}; the source model gives "
                        f"{tuple(out.shape)}", f"name one of {', '.join(SCORES)} that fits, or leave --score out")


def source_labelled(data: Dataset, reference: Reference, score: str | None = None) -> Dataset:
    """`data` (unlabelled) with every split labelled by `reference` (inputs -> the source model's scored output), its
    task picked from those outputs (`output_task`) or named by `score`; the result's `reference` says what its
    scores mean. A detector whose source detects nothing in the test images is compared by its raw outputs
    (regression) instead of by box F1, which would be 1.0 for any model that detects nothing too."""
    if score is not None and score not in SCORES:
        raise UserError(f"unknown score {score!r}", f"use one of {', '.join(SCORES)}")
    outputs = {name: reference(split.x) for name, split in (("train", data.train), ("val", data.val),
                                                            ("test", data.test))}
    task = score or output_task(outputs["val"])
    _check_fits(outputs["val"], task)
    if task == "boxes" and not _detects(outputs["test"]):
        if score is not None:
            raise UserError("--score boxes: the source model detects nothing in the test images (score 0.25), so "
                            "box F1 would say nothing", "give images with what it detects, or --score regression")
        task = "regression"  # agreement of the raw outputs still says how far the model moved
    splits = {name: Split(getattr(data, name).x, _labels(out, task)) for name, out in outputs.items()}
    classes = outputs["val"].shape[-1 if task == "sequence" else 1] if task not in OUTPUT_TASKS else 0
    return replace(data, task=task, class_names=tuple(str(k) for k in range(classes)), reference=DESCRIPTIONS[task],
                   **splits)


def metric_name(data: Dataset, name: str) -> str:
    """A score's name as tables show it: the metric's own (`name`) for labelled data, the agreement's otherwise."""
    return METRICS[data.task] if data.reference is not None else name
