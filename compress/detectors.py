"""Detectors as networks the criteria can score: their per-anchor class scores, shaped (images, anchors, classes),
for ultralytics YOLO heads and torchvision's single-stage detectors (SSD, SSDlite, RetinaNet, FCOS)."""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.outputs import OutputKey


def yolo_scores(out: Any, classes: int | None = None) -> torch.Tensor:
    """The class scores of an ultralytics head's output as (images, anchors, classes): the first tensor of what it
    returns (nested in a tuple for segmentation), (images, 4 box values + classes + extras, anchors). The extras,
    a segmentation head's mask coefficients, a pose head's keypoints, an OBB head's angle, are cut off by `classes`
    (the head's class count); without it every row after the box is taken as a class."""
    predictions = out
    while isinstance(predictions, list | tuple):
        predictions = predictions[0]
    if not isinstance(predictions, torch.Tensor) or predictions.dim() != 3:
        raise UserError("the model's output holds no (images, box + classes, anchors) tensor first",
                        "give an ultralytics detection, segmentation, pose or OBB model")
    return predictions[:, 4:None if classes is None else 4 + classes].transpose(1, 2)


class DetectorHeads(nn.Module):
    """A torchvision single-stage detector up to its head: its own transform (normalisation, resizing), backbone and
    head, returning the head's raw dict ('cls_logits' of shape (images, anchors, classes), 'bbox_regression', ...)
    before box decoding and non-maximum suppression, which no criterion can see through.

    Pruning this module prunes `detector` itself: once pruned, `result.model.detector` is the whole smaller detector,
    post-processing included (its anchors follow the feature map sizes, which channel pruning keeps).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        missing = [part for part in ("transform", "backbone", "head") if not hasattr(detector, part)]
        if missing:
            kind = "a two-stage detector (rpn + roi_heads)" if hasattr(detector, "roi_heads") else \
                f"a {type(detector).__name__} without {', '.join(missing)}"
            raise UserError(f"DetectorHeads takes torchvision's single-stage detectors (SSD, SSDlite, RetinaNet, "
                            f"FCOS); {type(detector).__name__} is {kind}",
                            "prune its backbone as a classifier's, or use a single-stage detector")
        self.detector = detector

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs for a batch of same-size images (N, 3, H, W) in [0, 1]."""
        features = self.detector.backbone(self.transformed(x))
        features = list(features.values()) if isinstance(features, dict) else [features]
        return self.detector.head(features)

    def transformed(self, x: torch.Tensor) -> torch.Tensor:
        """What the detector's eval-mode transform makes of a batch of same-size images, computed on the batch as a
        whole (torchvision's works image by image, which ties an exported graph to one batch size): normalised,
        resized to its fixed size or by its min/max-size scale, zero-padded to a multiple of its size divisor."""
        transform = self.detector.transform
        x = transform.normalize(x)
        if transform.fixed_size is not None:
            x = F.interpolate(x, size=[transform.fixed_size[1], transform.fixed_size[0]], mode="bilinear",
                              align_corners=False)
        else:
            h, w = x.shape[-2:]
            scale = min(transform.min_size[-1] / min(h, w), transform.max_size / max(h, w))
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", recompute_scale_factor=True,
                              align_corners=False)
        divisor = transform.size_divisible
        h, w = x.shape[-2:]
        return F.pad(x, (0, -w % divisor, 0, -h % divisor))


def detection_output(model: nn.Module) -> OutputKey:
    """The class-score output of a known detector (DetectorHeads, an ultralytics YOLO model), or None."""
    if isinstance(model, DetectorHeads):
        return "cls_logits"
    if type(model).__module__.startswith("ultralytics.nn"):
        head = model.model[-1] if isinstance(getattr(model, "model", None), nn.Sequential) else None
        return functools.partial(yolo_scores, classes=getattr(head, "nc", None))
    return None
