import pytest
import torch
from torch import nn

from edgewise.base.errors import UserError
from edgewise.stages.prune import calibration_inputs, tuner
from edgewise.stages.prune_config import PruneConfig


def test_tuning_distils_where_there_are_no_labels_and_reads_labels_where_asked():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    assert tuner(teacher, x, y, "classification", PruneConfig()) is None  # no steps asked
    config = PruneConfig(tune_steps=5)
    assert tuner(teacher, x, None, "classification", config)(nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)))["targets"] == "distill"
    assert tuner(teacher, x, y, "classification", config)(nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)))["targets"] == "labels"
    with pytest.raises(UserError, match="no labels"):
        tuner(teacher, x, None, "classification", PruneConfig(tune_steps=5, tune_targets="labels"))


def test_calibration_inputs_are_a_draw_not_the_first_of_an_ordered_split():
    x = torch.arange(100.0)[:, None]
    drawn = calibration_inputs(x, 10)
    assert len(drawn) == 10 and drawn.max() > 50
    assert torch.equal(drawn, calibration_inputs(x, 10))
