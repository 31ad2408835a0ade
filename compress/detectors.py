"""Detectors as networks the criteria can score: their per-anchor class scores, shaped (images, anchors, classes),
for ultralytics YOLO heads and torchvision's single-stage detectors (SSD, SSDlite, RetinaNet, FCOS)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgewise.compress.outputs import OutputKey


def yolo_scores(out: Any) -> torch.Tensor:
    """The class scores of an ultralytics detection head's output, (images, 4 box values + classes, anchors) first in
    the tuple it returns, as (images, anchors, classes)."""
    predictions = out[0] if isinstance(out, list | tuple) else out
    return predictions[:, 4:].transpose(1, 2)


class DetectorHeads(nn.Module):
    """A torchvision single-stage detector up to its head: its own transform (normalisation, resizing), backbone and
    head, returning the head's raw dict ('cls_logits' of shape (images, anchors, classes), 'bbox_regression', ...)
    before box decoding and non-maximum suppression, which no criterion can see through.

    Pruning this module prunes `detector` itself: once pruned, `result.model.detector` is the whole smaller detector,
    post-processing included (its anchors follow the feature map sizes, which channel pruning keeps).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs for a batch of images (N, 3, H, W) in [0, 1]."""
        images, _ = self.detector.transform(list(x))
        features = self.detector.backbone(images.tensors)
        features = list(features.values()) if isinstance(features, dict) else [features]
        return self.detector.head(features)


def detection_output(model: nn.Module) -> OutputKey:
    """The class-score output of a known detector (DetectorHeads, an ultralytics YOLO model), or None."""
    if isinstance(model, DetectorHeads):
        return "cls_logits"
    if type(model).__module__.startswith("ultralytics.nn"):
        return yolo_scores
    return None
