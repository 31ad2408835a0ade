import pytest
import torch

from edgewise.zoo.cache import trained_model
from edgewise.zoo.dataset import Split
from edgewise.zoo.models import build_model
from edgewise.zoo.training import TrainConfig, evaluate, fit

pytestmark = pytest.mark.slow


def test_digits_mlp_reaches_95_percent(digits_mlp):
    trained, data = digits_mlp
    assert evaluate(trained.module, data.test, data.task)["accuracy"] >= 0.95


def test_digits_cnn_reaches_96_percent(digits_cnn):
    trained, data = digits_cnn
    assert evaluate(trained.module, data.test, data.task)["accuracy"] >= 0.96


def test_rail_net_miou_on_held_out_scenes(rail_net):
    trained, data = rail_net
    metrics = evaluate(trained.module, data.test, data.task, data.class_names)
    assert metrics["miou"] > 0.5
    assert set(metrics["iou"]) == set(data.class_names)
    assert metrics["score"] == metrics["miou"] and metrics["score_name"] == "mIoU"


def test_training_is_deterministic_for_a_seed(digits):
    config = TrainConfig(epochs=2)
    states = []
    for _ in range(2):
        torch.manual_seed(7)
        model = build_model("mlp", digits.input_shape, 10, hidden=[16])
        fit(model, digits, config, seed=7)
        states.append(model.state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key])


def test_cache_reuses_a_trained_model(digits_mlp):
    trained, data = digits_mlp
    again = trained_model("mlp", data, TrainConfig(**trained.card["train"]), 0, trained.card["arch_args"])
    assert again.cached and again.path == trained.path
    assert again.card["test_metrics"] == trained.card["test_metrics"]
    x = data.test.x[:5]
    assert torch.equal(again.module(x), trained.module(x))


def test_evaluate_segmentation_counts_iou_exactly():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            # predicts class 0 on the left half, class 1 on the right half
            logits = torch.zeros(x.shape[0], 2, 2, 2)
            logits[:, 0, :, 0] = 1
            logits[:, 1, :, 1] = 1
            return logits

    y = torch.tensor([[[0, 0], [0, 1]]])
    metrics = evaluate(Fixed(), Split(torch.zeros(1, 1, 2, 2), y), "segmentation", ("a", "b"))
    # class a: tp 2, union 3; class b: tp 1, union 2
    assert metrics["iou"] == {"a": pytest.approx(2 / 3), "b": pytest.approx(1 / 2)}
    assert metrics["pixel_accuracy"] == pytest.approx(3 / 4)


def test_an_output_that_does_not_fit_the_labels_is_a_one_line_error():
    from edgewise.board.errors import UserError
    from edgewise.zoo.training import score_logits

    detections = torch.rand(4, 8, 84)  # a detector's (samples, boxes + classes, anchors)
    with pytest.raises(UserError, match=r"output \(4, 8, 84\) does not fit the classification labels \(4,\)"):
        score_logits(detections, torch.zeros(4, dtype=torch.long), "classification")
    with pytest.raises(UserError, match="segmentation needs logits of shape"):
        score_logits(torch.rand(4, 3), torch.zeros(4, 8, 8, dtype=torch.long), "segmentation")
