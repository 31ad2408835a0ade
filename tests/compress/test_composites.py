import pytest
import torch

from edgewise.board.errors import UserError
from edgewise.compress.composites import COMPOSITES, composite_rules, select_composite, selection_line
from edgewise.compress.criteria.lrp import LRPCriterion
from edgewise.compress.pruning import prune
from edgewise.compress.reference import held_out_split
from edgewise.compress.repair import output_error
from edgewise.zoo.models import build_model


def test_a_named_composite_is_its_rules_and_an_unknown_one_is_refused():
    assert composite_rules("epsilon-gamma-flat") == {"first": "flat", "conv": "gamma", "linear": "epsilon"}
    with pytest.raises(UserError, match="unknown LRP composite 'plus'") as caught:
        composite_rules("plus")
    assert "epsilon-plus-flat" in caught.value.fix and "auto" in caught.value.fix


def test_the_composite_whose_repaired_trial_cut_keeps_the_outputs_closest_is_chosen(reference):
    torch.manual_seed(0)
    model = build_model("lenet", (1, 8, 8), 10).eval()
    ref, calibration = reference((1, 8, 8)), torch.rand(40, 1, 8, 8)
    candidates = ("epsilon-plus-flat", "epsilon")
    selection = select_composite(model, ref, 0.4, calibration, candidates)
    assert [t["composite"] for t in selection.trials] == list(candidates)
    fit, check = held_out_split(40, 0.25, 0)
    for trial in selection.trials:  # each error is the trial cut's, repaired on the fitting share, on the rest
        cut = prune(model, ref, LRPCriterion(COMPOSITES[trial["composite"]]), 0.4, calibration=calibration[fit])
        assert trial["error"] == pytest.approx(output_error(model, cut.model, calibration[check]), rel=1e-9)
    best = min(selection.trials, key=lambda t: t["error"])
    assert selection.chosen == best["composite"] and selection.rules == COMPOSITES[best["composite"]]
    record = selection.to_json()
    assert record["trial_rate"] == 0.4 and selection_line(record).startswith(
        f"LRP composite {selection.chosen} chosen by a trial cut of 40%, repaired")


def test_a_composite_choice_needs_calibration_inputs(reference):
    with pytest.raises(UserError, match="at least 4 calibration inputs"):
        select_composite(build_model("lenet", (1, 8, 8), 10).eval(), reference((1, 8, 8)), 0.3, torch.rand(3, 1, 8, 8))
