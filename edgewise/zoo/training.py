"""Training and evaluation for classification and segmentation, deterministic for a seed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgewise.base import progress
from edgewise.base.device import device_of
from edgewise.board.errors import UserError
from edgewise.compress.batching import samples_per_pass
from edgewise.compress.outputs import pick
from edgewise.compress.tasks import OUTPUT_TASKS, loss_for
from edgewise.zoo.boxes import box_f1
from edgewise.zoo.dataset import Dataset, Split
from edgewise.zoo.training_config import TrainConfig


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(batch_size))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Run `model` in eval mode over `x` in batches on the model's device and return the concatenated logits on the
    CPU (a model returning a dict, tuple or list: its scoring tensor, compress.outputs.pick). A batch holds at most
    `batch_size` samples, fewer where one pass of that many would hold more than compress.batching.PASS_BUDGET."""
    model.eval()
    device = device_of(model)
    batch_size = min(batch_size, samples_per_pass(model, x))
    return torch.cat([pick(model(x[idx].to(device))).cpu() for idx in _batches(len(x), batch_size, None)])


def evaluate(model: nn.Module, split: Split, task: str, class_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """Score `model` on `split`: accuracy for classification; mIoU, pixel accuracy and per-class IoU for segmentation.

    Every result has `score` (accuracy or mIoU, in [0, 1]) and `score_name`, so reports can
    compare stages of any task. mIoU averages over the classes present in labels or predictions.
    """
    return score_logits(predict(model, split.x), split.y, task, class_names)


def score_logits(logits: torch.Tensor, y: torch.Tensor, task: str, class_names: tuple[str, ...] = ()
                 ) -> dict[str, Any]:
    """`evaluate`'s metrics from logits computed elsewhere (an ONNX Runtime session, say) and the labels `y`: class
    labels for classification and segmentation, per-step labels for a sequence (exact greedy-CTC strings), the
    source's outputs for an embedding (cosine similarity), a detector's boxes (box F1) or a regression (1 - relative
    error)."""
    if task in ("sequence", *OUTPUT_TASKS):
        return _output_scores(logits, y, task)
    expected = "(samples, classes)" if task == "classification" else "(samples, classes, height, width)"
    if logits.dim() != y.dim() + 1 or logits.shape[0] != y.shape[0] or logits.shape[2:] != y.shape[1:]:
        raise UserError(f"the model's output {tuple(logits.shape)} does not fit the {task} labels {tuple(y.shape)}: "
                        f"{task} needs logits of shape {expected}",
                        "give data of the model's own task (a detector's outputs cannot be scored on class labels; "
                        "prune it through the Python API, edgewise.compress.prune, without an evaluate function)")
    loss = float(F.cross_entropy(logits, y))
    pred = logits.argmax(1)
    if task == "classification":
        acc = float((pred == y).float().mean())
        return {"score_name": "accuracy", "score": acc, "accuracy": acc, "loss": loss}
    k = logits.shape[1]
    confusion = torch.bincount(y.reshape(-1) * k + pred.reshape(-1), minlength=k * k).reshape(k, k).double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.nan)
    miou = float(iou[union > 0].mean())
    names = class_names or tuple(str(i) for i in range(k))
    return {
        "score_name": "mIoU", "score": miou, "miou": miou,
        "pixel_accuracy": float(tp.sum() / confusion.sum()), "loss": loss,
        "iou": {names[i]: (None if torch.isnan(iou[i]) else float(iou[i])) for i in range(k)},
    }


def greedy_ctc(steps: torch.Tensor, blank: int = 0) -> list[tuple[int, ...]]:
    """Per sample, the labels of (samples, steps) class indices with repeats merged and `blank` dropped."""
    out = []
    for row in steps.tolist():
        merged = [c for i, c in enumerate(row) if i == 0 or c != row[i - 1]]
        out.append(tuple(c for c in merged if c != blank))
    return out


def _output_scores(out: torch.Tensor, y: torch.Tensor, task: str) -> dict[str, Any]:
    if task == "sequence":
        if out.dim() != 3 or tuple(out.shape[:2]) != tuple(y.shape):
            raise UserError(f"the model's output {tuple(out.shape)} is not one class distribution per step of the "
                            f"labels {tuple(y.shape)}", "score a (samples, steps, classes) output as a sequence")
        pred = out.argmax(-1)
        same = [a == b for a, b in zip(greedy_ctc(pred), greedy_ctc(y), strict=True)]
        score = sum(same) / max(len(same), 1)
        return {"score_name": "sequences", "score": score, "sequences": score,
                "steps": float((pred == y).float().mean()), "loss": float(loss_for(task)(out, y))}
    if out.shape != y.shape:
        raise UserError(f"the model's output {tuple(out.shape)} differs from the reference outputs {tuple(y.shape)}",
                        "score the model on the data its reference outputs were computed on")
    if task == "boxes":

        scores = box_f1(out, y)
        return {"score_name": "box F1", "score": scores["f1"], **scores, "loss": float(loss_for(task)(out, y))}
    if task == "embedding":
        cosine = float(F.cosine_similarity(out.flatten(1), y.flatten(1), dim=1).mean())
        return {"score_name": "cosine", "score": cosine, "cosine": cosine, "loss": 1.0 - cosine}
    error = (out - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1).clamp(min=1e-12)
    score = float((1.0 - error).clamp(min=0.0).mean())
    return {"score_name": "1 - relative error", "score": score, "relative_error": float(error.mean()),
            "loss": float(loss_for(task)(out, y))}


Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Score = Callable[[nn.Module, Split], float]


def fit(model: nn.Module, data: Dataset, config: TrainConfig, seed: int = 0, label: str = "train",
        loss_fn: Loss | None = None, score_fn: Score | None = None) -> dict[str, Any]:
    """Train `model` in place on `data.train`, on the model's device; keep the weights with the best validation score.

    `loss_fn(logits, labels)` replaces cross-entropy and `score_fn(model, split)` the validation
    score (accuracy or mIoU), e.g. to fine-tune an expert for its classes. Returns the history:
    per-epoch training loss and validation score, the best epoch, and whether early stopping
    ended the run.
    """
    loss_fn = loss_fn or loss_for(data.task)
    score_fn = score_fn or (lambda m, split: evaluate(m, split, data.task)["score"])
    generator = torch.Generator().manual_seed(seed)
    device = device_of(model)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best_score, best_state, best_epoch, stale = -1.0, copy.deepcopy(model.state_dict()), 0, 0
    history: dict[str, Any] = {"loss": [], "val_score": [], "stopped_early": False}
    with progress.task(label, config.epochs) as task:
        for epoch in range(config.epochs):
            model.train()
            total, count = 0.0, 0
            for idx in _batches(len(data.train), config.batch_size, generator):
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(model(data.train.x[idx].to(device)), data.train.y[idx].to(device))
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            score = score_fn(model, data.val)
            history["loss"].append(total / max(count, 1))
            history["val_score"].append(score)
            if score > best_score:
                best_score, best_state, best_epoch, stale = score, copy.deepcopy(model.state_dict()), epoch, 0
            else:
                stale += 1
            task.advance(f"loss {total / max(count, 1):.4f}  val {score:.4f}")
            if stale >= config.patience:
                history["stopped_early"] = True
                break
    model.load_state_dict(best_state)
    model.eval()
    history.update(best_epoch=best_epoch, best_val_score=best_score, epochs_run=len(history["loss"]))
    return history
