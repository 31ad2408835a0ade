"""Data without labels: read as such, labelled by a source model, and scored by agreement with it."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from edgewise.board.errors import UserError
from edgewise.zoo.agreement import output_task, source_labelled
from edgewise.zoo.dataset import UNLABELLED
from edgewise.zoo.training import greedy_ctc, score_logits
from edgewise.zoo.userdata import load_folder, load_npz


def test_inputs_alone_are_unlabelled_data(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((20, 3, 4, 4), dtype=np.float32))
    data = load_npz(tmp_path / "x.npz")
    assert data.task == UNLABELLED and (len(data.train), len(data.val), len(data.test)) == (12, 4, 4)
    np.savez(tmp_path / "bytes.npz", x_train=np.zeros((5, 16), np.int32), x_val=np.ones((2, 16), np.int32),
             x_test=np.ones((2, 16), np.int32))
    assert load_npz(tmp_path / "bytes.npz").train.x.dtype == torch.int32  # tokens and bytes keep their type
    for i in range(5):
        Image.fromarray(np.full((6, 6, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    assert load_folder(tmp_path, size=(6, 6)).task == UNLABELLED  # images without class folders


@pytest.mark.parametrize(("out", "task"), [
    (torch.randn(6, 5), "classification"),
    (F.normalize(torch.randn(6, 8), dim=1), "embedding"),
    (torch.randn(6, 7, 4).log_softmax(-1), "sequence"),
    (torch.randn(6, 7, 4).softmax(-1), "sequence"),
    (torch.randn(6, 3, 4, 4), "segmentation"),
    (torch.randn(6, 1, 4, 4), "regression"),
    (torch.rand(6, 22, 2100) * 320, "boxes"),  # YOLOv8's rows: 4 box values and 18 class scores per anchor
    (torch.randn(6, 20, 8210), "sequence"),  # a CRNN's CTC logits, batch first: 20 steps of 8210 classes
    (torch.randn(6, 3549, 6), "boxes"),  # YOLOX's: anchors first, box, objectness, one class
    (torch.randn(6, 3, 4), "regression"),
])
def test_the_outputs_say_how_agreement_is_scored(out, task):
    assert output_task(out) == task


def _unlabelled(n=10):
    from edgewise.zoo.userdata import unlabelled

    return unlabelled(np.random.default_rng(1).random((n, 4), dtype=np.float32), "x", "x")


def test_a_source_labels_each_split_and_its_own_outputs_agree_fully():
    data = _unlabelled()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    labelled = source_labelled(data, lambda x: model(x).detach())
    assert labelled.task == "classification" and labelled.class_names == ("0", "1", "2")
    assert labelled.reference == "top-1 agreement with the source model"
    assert torch.equal(labelled.test.y, model(data.test.x).argmax(1))
    assert score_logits(model(labelled.test.x).detach(), labelled.test.y, labelled.task)["score"] == 1.0
    embedded = source_labelled(data, lambda x: F.normalize(model(x).detach(), dim=1), score="embedding")
    assert score_logits(F.normalize(model(data.test.x), dim=1).detach(), embedded.test.y, "embedding")["score"] == \
        pytest.approx(1.0)
    with pytest.raises(UserError, match="--score sequence needs outputs of rank 3"):
        source_labelled(data, lambda x: model(x).detach(), score="sequence")
    with pytest.raises(UserError, match="unknown score"):
        source_labelled(data, lambda x: model(x).detach(), score="colours")


def test_sequence_agreement_compares_greedy_ctc_strings():
    assert greedy_ctc(torch.tensor([[0, 3, 3, 0, 3, 1, 1, 0]])) == [(3, 3, 1)]
    y = torch.tensor([[3, 3, 0, 1], [2, 0, 0, 2]])
    same = F.one_hot(torch.tensor([[3, 0, 0, 1], [2, 2, 0, 2]]), 4).float()  # other steps, the same strings
    other = F.one_hot(torch.tensor([[3, 0, 0, 1], [2, 0, 0, 0]]), 4).float()
    assert score_logits(same, y, "sequence")["score"] == 1.0
    result = score_logits(other, y, "sequence")
    assert result["score"] == 0.5 and result["steps"] == 0.75


def test_regression_agreement_is_one_minus_the_relative_error():
    target = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    assert score_logits(target * 1.1, target, "regression")["score"] == pytest.approx(0.9)
    assert score_logits(-target, target, "regression")["score"] == 0.0  # clipped at 0, never negative


def _yolo(boxes, scores):
    """A YOLOv8-style output (1, 4 + classes, anchors) of centre boxes and class probabilities, padded with anchors
    that detect nothing (anchors outnumber the values, as in every such export)."""
    rows = torch.cat([torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32)], dim=1)
    rows = torch.cat([rows, torch.zeros(40 - len(rows), rows.shape[1])])
    return rows.T[None].contiguous()


def test_box_f1_matches_detections_by_class_and_overlap():
    # three anchors: two confident boxes of classes 0 and 1, one below the score threshold
    reference = _yolo([[10, 10, 4, 4], [30, 30, 6, 6], [50, 50, 4, 4]], [[0.9, 0.1], [0.1, 0.8], [0.1, 0.1]])
    assert score_logits(reference, reference, "boxes")["score"] == 1.0
    moved = _yolo([[10.5, 10, 4, 4], [60, 60, 6, 6], [50, 50, 4, 4]], [[0.9, 0.1], [0.1, 0.8], [0.1, 0.1]])
    result = score_logits(moved, reference, "boxes")  # the first still overlaps, the second went elsewhere
    assert result["score"] == 0.5 and result["precision"] == 0.5 and result["recall"] == 0.5
    relabelled = _yolo([[10, 10, 4, 4], [30, 30, 6, 6], [50, 50, 4, 4]], [[0.1, 0.9], [0.1, 0.8], [0.1, 0.1]])
    assert score_logits(relabelled, reference, "boxes")["score"] == 0.5  # the same place, another class


def test_box_f1_is_not_used_where_the_source_detects_nothing():
    data = _unlabelled(10)
    empty = _yolo([[10, 10, 4, 4]], [[0.1, 0.1]])  # one box below the threshold: no detection
    assert source_labelled(data, lambda x: empty.expand(len(x), -1, -1)).task == "regression"
    with pytest.raises(UserError, match="detects nothing"):
        source_labelled(data, lambda x: empty.expand(len(x), -1, -1), score="boxes")
    found = _yolo([[10, 10, 4, 4]], [[0.9, 0.1]])
    assert source_labelled(data, lambda x: found.expand(len(x), -1, -1)).task == "boxes"
