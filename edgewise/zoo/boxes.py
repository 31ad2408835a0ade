"""Agreement of a one-stage detector's boxes with a source model's: decoded, thresholded, non-max suppressed, and
matched class by class at an IoU, as box F1.

A YOLO-style export writes one row per anchor: four box values (centre x, centre y, width, height) and class scores,
either channels first (N, 4 + classes, anchors), as YOLOv8's exports do, or anchors first (N, anchors, 5 + classes)
with an objectness column before the class scores, as YOLOv5's and YOLOX's do. Scores outside [0, 1] are logits and
are squashed first. Both models' outputs are decoded alike, so boxes in grid units agree as well as in pixels.
"""

from __future__ import annotations

import torch

SCORE_THRESHOLD = 0.25
"""A detection counts from this score (objectness x class score, or the class score alone)."""
MATCH_IOU = 0.5
"""A detection agrees with the source's when their boxes overlap by this IoU and their classes are the same."""
MAX_DETECTIONS = 300


def detections(out: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image of a (N, 4 + classes, anchors) or (N, anchors, 5 + classes) output: its kept boxes (xyxy) and their
    classes, after SCORE_THRESHOLD and per-class non-max suppression at MATCH_IOU."""
    from torchvision.ops import batched_nms, box_convert

    channels_first = out.shape[1] < out.shape[2]
    rows = (out.transpose(1, 2) if channels_first else out).float()
    scores = rows[..., 4:]
    if scores.numel() and (scores.min() < 0 or scores.max() > 1):
        scores = scores.sigmoid()
    if not channels_first and scores.shape[-1] > 1:  # objectness, then class scores
        scores = scores[..., :1] * scores[..., 1:]
    best, classes = scores.max(-1)
    kept = []
    for boxes, score, cls in zip(box_convert(rows[..., :4], "cxcywh", "xyxy"), best, classes, strict=True):
        chosen = score >= SCORE_THRESHOLD
        boxes, score, cls = boxes[chosen], score[chosen], cls[chosen]
        order = batched_nms(boxes, score, cls, MATCH_IOU)[:MAX_DETECTIONS]
        kept.append((boxes[order], cls[order]))
    return kept


def _matches(found: tuple[torch.Tensor, torch.Tensor], reference: tuple[torch.Tensor, torch.Tensor]) -> int:
    """Greedy one-to-one matches of `found` to `reference` detections: same class, IoU at least MATCH_IOU."""
    from torchvision.ops import box_iou

    (boxes, classes), (ref_boxes, ref_classes) = found, reference
    if not len(boxes) or not len(ref_boxes):
        return 0
    iou = box_iou(boxes, ref_boxes) * (classes[:, None] == ref_classes[None, :])
    matched = 0
    while True:
        value, index = iou.flatten().max(0)
        if value < MATCH_IOU:
            return matched
        i, j = divmod(int(index), iou.shape[1])
        iou[i, :], iou[:, j] = 0, 0
        matched += 1


def box_f1(out: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Box F1 of a detector's outputs `out` against the source's `reference` outputs over all images (2 x matches /
    (detections + reference detections); 1.0 when neither detects anything), with its precision and recall."""
    found, wanted = detections(out), detections(reference)
    matched = sum(_matches(f, w) for f, w in zip(found, wanted, strict=True))
    n_found, n_wanted = sum(len(f[0]) for f in found), sum(len(w[0]) for w in wanted)
    f1 = 1.0 if n_found + n_wanted == 0 else 2 * matched / (n_found + n_wanted)
    return {"f1": f1, "precision": matched / n_found if n_found else float(not n_wanted),
            "recall": matched / n_wanted if n_wanted else float(not n_found), "detections": float(n_wanted)}
