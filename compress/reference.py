"""Reference samples for scoring channels: inputs, labels, the task, and an optional restriction to classes; and the
random held-out split that repair and tuning judge themselves on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.batching import samples_per_pass
from edgewise.compress.tasks import CLASS_TASKS, OUTPUT_TASKS, TASKS

OUTPUT_SEEDS = ("onehot", "logit", "contrast")


def held_out_split(count: int, share: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of `count` samples split at random (samples often come ordered by class) into the ones to fit on and
    a `share` held out, each side at least one sample; a single sample is both."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    if count < 2:
        return order, order
    split = max(1, min(count - 1, round(count * (1 - share))))
    return order[:split], order[split:]


@dataclass(frozen=True)
class ReferenceSamples:
    """The few (to few hundred) samples criteria look at, and which outputs count.

    `classes` restricts every data-driven criterion to the chosen classes: for classification the
    samples of those classes, for segmentation the pixels of those classes, for detection the
    detections of those classes. `output` picks the seed at the output for relevance and saliency:
    `onehot` (1 for the true class), `logit` (the true class's logit) or `contrast` (1 for the true
    class, -1/(K-1) for every other: what separates the class from the rest rather than what
    raises its logit).

    Detection has no label per image: the seed is the model's own `detections` strongest
    (anchor, class) scores per image among the allowed classes, on a class-score output of shape
    (N, anchors, classes) (see compress.detectors); `y` is unused (build with `for_detection`).
    A sequence's labels are one class per step of a (N, steps, classes) output; an embedding's or
    a regression's `y` is the output the source model gives, which is the seed itself
    (compress.tasks).
    """

    x: torch.Tensor
    y: torch.Tensor
    task: str = "classification"
    classes: tuple[int, ...] | None = None
    batch_size: int = 32
    output: str = "onehot"
    detections: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor) or not isinstance(self.y, torch.Tensor):
            raise UserError(f"reference samples take torch tensors, got x: {type(self.x).__name__}, y: "
                            f"{type(self.y).__name__}", "convert them: ReferenceSamples(torch.as_tensor(x), "
                            "torch.as_tensor(y))")
        if self.task in CLASS_TASKS and (self.y.is_floating_point() or self.y.dtype == torch.bool):
            raise UserError(f"{self.task} labels are class indices, got {str(self.y.dtype).removeprefix('torch.')} "
                            "labels", "convert them: y.long()")
        if self.task not in TASKS:
            raise UserError(f"unknown task {self.task!r}", f"use one of {', '.join(TASKS)}")
        if self.task == "detection" and self.output == "contrast":
            raise UserError("the contrast seed needs one true class per sample, which detection has not",
                            "use output='onehot' or 'logit' for detectors")
        if self.detections < 1:
            raise UserError(f"detections must be at least 1, got {self.detections}",
                            "seed at least one detection per image")
        if len(self.x) == 0:
            raise UserError("no reference samples were given", "pass at least one sample per class")
        if len(self.x) != len(self.y):
            raise UserError(f"{len(self.x)} reference inputs but {len(self.y)} labels", "give one label per input")
        if self.output not in OUTPUT_SEEDS:
            raise UserError(f"unknown output seed {self.output!r}", f"use one of {', '.join(OUTPUT_SEEDS)}")

    @classmethod
    def for_detection(cls, x: torch.Tensor, classes: tuple[int, ...] | None = None, detections: int = 10,
                      **kwargs: object) -> ReferenceSamples:
        """Reference images of a detector: relevance starts at each image's `detections` strongest scores of
        `classes` (all classes by default)."""
        return cls(x, torch.zeros(len(x), dtype=torch.long), "detection", classes, detections=detections, **kwargs)

    @classmethod
    def from_split(cls, x: torch.Tensor, y: torch.Tensor, task: str, per_class: int | None = 10,
                   classes: tuple[int, ...] | None = None, **kwargs: object) -> ReferenceSamples:
        """Take `per_class` samples of each class in order (classification), or the first `per_class` x 10 scenes
        (segmentation); None takes them all."""
        if per_class is None:
            return cls(x, y, task, classes, **kwargs)
        if task != "classification":
            n = per_class * 10
            return cls(x[:n], y[:n], task, classes, **kwargs)
        picked = torch.cat([torch.nonzero(y == c).flatten()[:per_class] for c in torch.unique(y)]).sort().values
        return cls(x[picked], y[picked], task, classes, **kwargs)

    def batch_for(self, model: nn.Module, backward: bool = False) -> int:
        """`batch_size`, or fewer where a pass of `model` (without the hooks a criterion attaches: probe it before)
        over that many samples would hold more than compress.batching.PASS_BUDGET; with `backward`, a third of
        what a forward pass may take (its activations kept for the backward pass, and their gradients)."""
        return max(1, min(self.batch_size, samples_per_pass(model, self.x) // (3 if backward else 1)))

    def batches(self, device: torch.device | None = None, size: int | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The samples in order, `size` (default `batch_size`; see batch_for) at a time, on `device` (the model's:
        the samples stay where they are and only a batch at a time travels)."""
        size = size or self.batch_size
        for start in range(0, len(self.x), size):
            x, y = self.x[start:start + size], self.y[start:start + size]
            yield (x, y) if device is None else (x.to(device), y.to(device))

    def label_mask(self, y: torch.Tensor) -> torch.Tensor:
        """True where a sample (classification) or pixel (segmentation) belongs to the chosen classes."""
        if self.task in ("detection", "sequence", *OUTPUT_TASKS):
            return torch.ones(len(y), dtype=torch.bool, device=y.device)
        if self.classes is None:
            return torch.ones_like(y, dtype=torch.bool)
        return torch.isin(y, torch.tensor(self.classes, dtype=y.dtype, device=y.device))

    def output_seed(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The relevance (or gradient) to start from at the output: the true class, masked to the chosen classes
        (for detection: the strongest detections of the chosen classes)."""
        if self.task == "detection":
            return self._detection_seed(logits)
        if self.task in OUTPUT_TASKS:
            return y.to(logits.dtype)
        axis = -1 if self.task == "sequence" else 1  # a sequence's classes are its last axis
        seed = F.one_hot(y, logits.shape[axis]).to(logits.dtype)
        if seed.dim() > 2 and axis == 1:  # (N, H, W, K) -> (N, K, H, W)
            seed = seed.movedim(-1, 1)
        if self.output == "contrast":
            seed = seed - (1.0 - seed) / (logits.shape[axis] - 1)
        if self.task != "sequence":  # a sequence's steps are never restricted to classes
            seed = seed * self.label_mask(y).unsqueeze(1).to(logits.dtype)
        return seed * logits.detach() if self.output == "logit" else seed

    def _detection_seed(self, scores: torch.Tensor) -> torch.Tensor:
        if scores.dim() == 4:  # a dense map (images, classes, height, width), as DBNet's text map: a pixel an anchor
            seed = self._detection_seed(scores.flatten(2).transpose(1, 2))
            return seed.transpose(1, 2).reshape(scores.shape)
        if scores.dim() != 3:
            raise UserError(f"a detector is scored on class scores of shape (images, anchors, classes) or a map "
                            f"(images, classes, height, width), got {tuple(scores.shape)}",
                            "name the class-score output (compress.detectors)")
        allowed = torch.zeros(scores.shape[2], dtype=torch.bool, device=scores.device)
        if self.classes is None:
            allowed[:] = True
        else:
            outside = [c for c in self.classes if not 0 <= c < scores.shape[2]]
            if outside:
                raise UserError(f"detection classes {outside} are outside the model's {scores.shape[2]} classes",
                                f"use classes 0 to {scores.shape[2] - 1}")
            allowed[list(self.classes)] = True
        ranked = scores.detach().masked_fill(~allowed, float("-inf")).flatten(1)
        k = min(self.detections, int(allowed.sum()) * scores.shape[1])
        strongest = ranked.topk(k, dim=1).indices
        seed = torch.zeros_like(ranked).scatter_(1, strongest, 1.0).reshape(scores.shape)
        return seed * scores.detach() if self.output == "logit" else seed

    def spatial_mask(self, y: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """The label mask resized to a feature map's spatial `size` (N, 1, *size), or (N, 1) for flat features."""
        mask = self.label_mask(y).to(torch.float32)
        if self.task != "segmentation":
            return mask.reshape(len(y), 1, *([1] * len(size)))
        if len(size) == 0:
            return mask.flatten(1).amax(1, keepdim=True)
        return F.interpolate(mask.unsqueeze(1), size=tuple(size), mode="nearest")
