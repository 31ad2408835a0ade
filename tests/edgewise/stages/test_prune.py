import pytest
import torch
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.reference import ReferenceSamples
from edgewise.stages.prune import calibration_inputs, prune_as_configured, step_lines, tuner
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


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()


@pytest.mark.parametrize("settings", [{"composite": "auto"}, {}])
def test_composite_auto_chooses_the_rules_before_the_cut_and_records_why(settings):
    torch.manual_seed(0)
    model = small_cnn()
    ref = ReferenceSamples.from_split(torch.rand(16, 1, 8, 8), torch.arange(16) % 4, "classification", None)
    result = prune_as_configured(model, ref, PruneConfig(rate=0.3, **settings), calibration=torch.rand(32, 1, 8, 8))
    chosen = result.summary()["composite_selection"]
    assert {t["composite"] for t in chosen["trials"]} == {"epsilon-plus-flat", "epsilon-alpha2beta1-flat",
                                                          "epsilon-gamma-flat", "epsilon"}
    rules = ", ".join(f"{k}={v}" for k, v in chosen["rules"].items())
    assert result.criterion == f"lrp({rules})"
    assert step_lines(result)[0].startswith(f"LRP composite {chosen['chosen']} chosen by a trial cut of 30%")


def test_without_calibration_enough_to_choose_an_lrp_cut_keeps_its_own_rules():
    torch.manual_seed(0)
    ref = ReferenceSamples.from_split(torch.rand(16, 1, 8, 8), torch.arange(16) % 4, "classification", None)
    result = prune_as_configured(small_cnn(), ref, PruneConfig(rate=0.3), calibration=torch.rand(3, 1, 8, 8))
    assert result.selection is None and result.criterion.startswith("lrp(")
    with pytest.raises(UserError, match="needs at least 4 calibration inputs"):
        prune_as_configured(small_cnn(), ref, PruneConfig(rate=0.3, composite="auto"),
                            calibration=torch.rand(3, 1, 8, 8))
