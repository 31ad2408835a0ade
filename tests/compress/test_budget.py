import copy

import pytest
import torch
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.budget import Budget, parse_target
from edgewise.compress.graph import ChannelGraph
from edgewise.compress.model_stats import measure_cost
from edgewise.compress.pruning import prune
from edgewise.compress.ranking import Ranking


class Mixed(nn.Module):
    """A plain, a depthwise, a grouped and a linear layer, with a residual sum coupling two of them."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 16, 1)
        self.grouped = nn.Conv2d(16, 32, 3, padding=1, groups=4)
        self.fc, self.head = nn.Linear(32, 24), nn.Linear(24, 5)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + self.pw(torch.relu(self.dw(x)))
        x = torch.relu(self.grouped(x)).mean((2, 3))
        return self.head(torch.relu(self.fc(x)))


@pytest.mark.parametrize("text,expected", [("macs=0.7", ("macs", 0.3)), ("params=0.5", ("params", 0.5)),
                                           ("channels=1", ("channels", 0.0))])
def test_a_target_is_the_unit_and_the_share_to_remove(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("text,problem", [("flops=0.7", "is not UNIT=SHARE"), ("macs", "is not UNIT=SHARE"),
                                          ("macs=lots", "is not a number"), ("macs=0", "must be in"),
                                          ("macs=1.5", "must be in")])
def test_a_malformed_target_names_the_problem_and_the_fix(text, problem):
    with pytest.raises(UserError, match=problem) as caught:
        parse_target(text)
    assert "macs=0.7" in caught.value.fix


def test_the_estimated_macs_of_a_removal_are_what_the_cut_measures():
    torch.manual_seed(0)
    model, x = Mixed().eval(), torch.rand(1, 3, 8, 8)
    graph = ChannelGraph(model, x)
    budget = Budget("macs", graph, measure_cost(model, (3, 8, 8)))
    removal = {g.name: g.channels_of(list(range(0, g.units, 3))) for g in graph.groups}
    assert {g.name for g in graph.groups} == {"stem", "grouped", "fc"}
    estimate = budget.estimate(removal)
    graph.remove(removal)
    assert estimate == pytest.approx(measure_cost(model, (3, 8, 8)).macs, rel=1e-12)


def test_the_estimate_reads_the_model_without_changing_it():
    model, x = Mixed().eval(), torch.rand(1, 3, 8, 8)
    graph, state = ChannelGraph(model, x), copy.deepcopy(model.state_dict())
    cost = measure_cost(model, (3, 8, 8))
    assert Budget("params", graph, cost).estimate({}) == cost.params
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize("unit", ["macs", "params"])
@pytest.mark.parametrize("schedule", ["oneshot", "iterative"])
def test_a_budget_in_macs_or_parameters_is_met(unit, schedule, reference):
    torch.manual_seed(0)
    model, ref = Mixed().eval(), reference((3, 8, 8), classes=5)
    result = prune(model, ref, "l1", 0.3, schedule, step=0.1, unit=unit, repair=None)
    assert result.unit == unit and result.shortfall is None
    assert 0.3 <= result.removed(unit) <= 0.3 + 0.1
    assert result.summary()["removed"][unit] == result.removed(unit) and result.summary()["unit"] == unit


def test_a_budget_the_layer_floors_forbid_is_reported_as_a_shortfall(reference):
    result = prune(Mixed().eval(), reference((3, 8, 8), classes=5), "l1", 0.8, unit="macs",
                   ranking=Ranking(max_layer_rate=0.3), repair=None)
    assert result.removed("macs") < 0.7
    assert result.shortfall.startswith("asked to remove 80% of the macs, the cut removed")
    assert result.summary()["shortfall"] == result.shortfall


def test_a_budget_needs_a_schedule_of_rates(reference):
    with pytest.raises(UserError, match="a budget in macs needs a schedule of rates"):
        prune(Mixed().eval(), reference((3, 8, 8), classes=5), "l1", 0.3, "adaptive", unit="macs")
