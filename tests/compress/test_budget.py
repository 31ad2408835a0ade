import copy

import pytest
import torch
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.budget import Budget, LatencyMeter, Target, latency_search, parse_target
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


@pytest.mark.parametrize("text,expected", [("macs=0.7", Target("macs", 0.3)), ("params=0.5", Target("params", 0.5)),
                                           ("channels=1", Target("channels", 0.0)),
                                           ("latency=0.6", Target("latency", 0.4)),
                                           ("latency=2.5ms", Target("latency", None, 2.5))])
def test_a_target_is_the_unit_and_the_share_to_remove_or_a_latency_goal(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("text,problem,fix", [
    ("flops=0.7", "is not UNIT=SHARE", "macs=0.7"), ("macs", "is not UNIT=SHARE", "macs=0.7"),
    ("macs=lots", "is not a number", "macs=0.7"), ("macs=0", "must be in", "macs=0.7"),
    ("macs=1.5", "must be in", "macs=0.7"), ("macs=2ms", "is not a number", "latency=2.5ms"),
    ("latency=fastms", "is not a number", "latency=2.5ms"), ("latency=0ms", "positive number of milliseconds",
                                                            "latency=2.5ms")])
def test_a_malformed_target_names_the_problem_and_the_fix(text, problem, fix):
    with pytest.raises(UserError, match=problem) as caught:
        parse_target(text)
    assert fix in caught.value.fix


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


def test_the_latency_search_finds_the_smallest_cut_that_meets_the_goal():
    share, probes = latency_search(7.0, lambda r: 10.0 * (1.0 - r), 0.0, 0.96, current_ms=10.0)
    assert 0.3 <= share <= 0.3 + 0.96 / 64
    assert [p["macs_removed"] for p in probes][:3] == [0.96, 0.48, 0.24] and len(probes) == 7
    assert all(p["latency_ms"] == pytest.approx(10.0 * (1.0 - p["macs_removed"])) for p in probes)


def test_where_even_the_deepest_cut_misses_the_smallest_as_fast_is_found():
    """A runtime with a fixed cost of 5 ms: the goal of 3 ms cannot be met, and cutting past 50% gains nothing."""
    share, _ = latency_search(3.0, lambda r: max(5.0, 10.0 * (1.0 - r)), 0.0, 0.96, current_ms=10.0)
    assert 0.475 <= share <= 0.475 + 0.96 / 64
    share, probes = latency_search(3.0, lambda r: 5.0, 0.2, 0.96, current_ms=5.0)
    assert share == 0.2 and len(probes) == 1  # as fast as the deepest cut already: nothing more is cut


def macs_meter(fixed_ms=0.0):
    """A meter whose latency is the model's MACs in millions (plus a fixed cost): the runtime's speed as exact
    arithmetic, so the search's choices can be checked."""
    return LatencyMeter(lambda m: fixed_ms + measure_cost(m, (3, 8, 8)).macs / 1e6, "test: MACs in millions")


@pytest.mark.parametrize("schedule", ["oneshot", "iterative"])
def test_a_latency_budget_is_met_by_timed_trial_cuts(schedule, reference):
    torch.manual_seed(0)
    result = prune(Mixed().eval(), reference((3, 8, 8), classes=5), "l1", 0.3, schedule, step=0.15, unit="latency",
                   latency=macs_meter(), repair=None)
    # the meter is MAC arithmetic: the latency it gives falls exactly as the MACs do
    assert result.shortfall is None and 0.3 <= result.removed("macs") <= 0.3 + 0.1
    record = result.summary()["latency_budget"]
    assert record["how"] == "test: MACs in millions"
    assert record["before_ms"] == result.before.macs / 1e6 and record["after_ms"] == result.after.macs / 1e6
    assert [s["step"] for s in record["steps"]] == ([1] if schedule == "oneshot" else [1, 2])
    assert record["steps"][-1]["goal_ms"] == pytest.approx(0.7 * record["before_ms"])
    assert all(len(s["probes"]) == 7 for s in record["steps"])
    assert [h["latency_ms"] for h in result.history] == [h["macs"] / 1e6 for h in result.history]
    assert result.summary()["removed"]["latency"] == result.removed("latency")


def test_a_latency_budget_the_runtime_cannot_meet_is_a_shortfall_not_the_deepest_cut(reference):
    fixed = measure_cost(Mixed().eval(), (3, 8, 8)).macs / 1e6  # half the unpruned latency is fixed cost
    result = prune(Mixed().eval(), reference((3, 8, 8), classes=5), "l1", 0.7, unit="latency",
                   latency=macs_meter(fixed), repair=None)
    deepest = result.latency["steps"][0]["probes"][0]
    assert deepest["macs_removed"] == 0.95 and result.after.macs > (deepest["latency_ms"] - fixed) * 1e6
    assert result.shortfall.startswith("asked to remove 70% of the latency") and "the runtime's speed" in \
        result.shortfall


def test_a_latency_budget_needs_a_meter(reference):
    with pytest.raises(UserError, match="a budget in latency needs a meter"):
        prune(Mixed().eval(), reference((3, 8, 8), classes=5), "l1", 0.3, unit="latency")
