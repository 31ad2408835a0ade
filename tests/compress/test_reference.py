import pytest
import torch

from edgewise.board.errors import UserError
from edgewise.compress.reference import ReferenceSamples


def _scores():
    """Two images, three anchors, two classes."""
    return torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.5, 0.4]],
                         [[0.1, 0.3], [0.7, 0.6], [0.2, 0.95]]])


def test_a_detector_is_seeded_at_its_strongest_detections():
    ref = ReferenceSamples.for_detection(torch.rand(2, 3, 8, 8), detections=2)
    seed = ref.output_seed(_scores(), ref.y)
    assert seed.tolist() == [[[1, 0], [0, 1], [0, 0]], [[0, 0], [1, 0], [0, 1]]]


def test_a_detection_class_restricts_the_seed_and_logit_keeps_the_score():
    ref = ReferenceSamples.for_detection(torch.rand(2, 3, 8, 8), classes=(1,), detections=1, output="logit")
    seed = ref.output_seed(_scores(), ref.y)
    torch.testing.assert_close(seed, torch.tensor([[[0, 0], [0, 0.8], [0, 0]], [[0, 0], [0, 0], [0, 0.95]]]))
    assert ref.label_mask(ref.y).all()


@pytest.mark.parametrize(("kwargs", "scores", "message"), [
    ({"output": "contrast"}, None, "contrast seed needs one true class"),
    ({"classes": (5,)}, _scores(), r"classes \[5\] are outside the model's 2 classes"),
    ({}, torch.rand(2, 6), r"class scores of shape \(images, anchors, classes\)"),
    ({"detections": 0}, None, "detections must be at least 1"),
])
def test_bad_detection_settings_are_one_line_errors(kwargs, scores, message):
    with pytest.raises(UserError, match=message):
        ref = ReferenceSamples.for_detection(torch.rand(2, 3, 8, 8), **kwargs)
        ref.output_seed(scores, ref.y)


def test_an_unknown_task_is_refused():
    with pytest.raises(UserError, match="unknown task 'detect'"):
        ReferenceSamples(torch.rand(2, 3), torch.zeros(2, dtype=torch.long), task="detect")
