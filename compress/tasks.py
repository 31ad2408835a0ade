"""The tasks a model's output is scored and trained by, and the loss of each.

Class labels (classification: one per sample; segmentation: one per pixel, the class axis 1) and per-step labels
(sequence: one per step of a (samples, steps, classes) output, as CTC recognisers write it, the class axis last)
are trained with cross-entropy. Embedding and regression have no classes: their target is the output the source
model gives, and the losses pull towards it (cosine distance; squared error relative to the target's energy); so
do a one-stage detector's raw boxes and scores (boxes: scored as box F1, trained as a regression).
Without labels every task's target comes from the source model, so fine-tuning and QAT become distillation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

CLASS_TASKS = ("classification", "segmentation", "sequence")
"""Tasks whose labels are class indices."""
OUTPUT_TASKS = ("embedding", "regression", "boxes")
"""Tasks whose labels are the source model's outputs themselves."""
TASKS = (*CLASS_TASKS, "detection", *OUTPUT_TASKS)

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sequence_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a (samples, steps, classes) output against (samples, steps) labels."""
    return F.cross_entropy(logits.movedim(-1, 1), y)


def embedding_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity to the target embedding, averaged over the samples."""
    return (1.0 - F.cosine_similarity(out.flatten(1), target.flatten(1), dim=1)).mean()


def regression_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error relative to the target's mean square (scale-free, so a loss of 1 is as far as predicting 0)."""
    return F.mse_loss(out, target) / target.pow(2).mean().clamp(min=1e-12)


def loss_for(task: str) -> Loss:
    """The training loss of `task`: cross-entropy for class labels, the distances above for outputs."""
    return {"sequence": sequence_loss, "embedding": embedding_loss, "regression": regression_loss,
            "boxes": regression_loss}.get(task, F.cross_entropy)
