"""Structured pruning: score channels, rank them, and physically remove the weakest through the dependency graph."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edgewise.base.device import device_of
from edgewise.board.errors import UserError
from edgewise.compress.arguments import check_module, check_reference, run_on_samples
from edgewise.compress.attention import written_out_copy
from edgewise.compress.budget import LATENCY_SHORTFALL, SHORTFALL, Budget, LatencyMeter, Unit, latency_search
from edgewise.compress.copying import model_copy
from edgewise.compress.criteria import Criterion, get_criterion
from edgewise.compress.detectors import detection_output
from edgewise.compress.graph import ChannelGraph, PruningError, breaking_removals
from edgewise.compress.layers import output_axis
from edgewise.compress.model_stats import RECURRENT_LAYERS, ModelCost, measure_cost
from edgewise.compress.outputs import OutputKey, scoring, shapes
from edgewise.compress.ranking import Ranking, plan_removal
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.repair import REPAIR, Repair, repair_cut
from edgewise.compress.schedules import MAX_STEPS, Schedule, get_schedule

Plan = dict[str, list[int]]
"""Per channel group (named by its first layer), the ORIGINAL channel indices that are kept."""


@dataclass
class PruneResult:
    """A pruned model (an ordinary, smaller nn.Module), the plan that made it, and the per-layer report.

    `left_whole` names the channel groups that could not be pruned safely, with the reason; `repairs` holds, per
    step, what repair did (compress.repair.RepairReport.to_json()); `unit` is what `rate` counts (channels, macs or
    params, see compress.budget); `selection` how the LRP composite was chosen, where it was
    (compress.composites.Selection.to_json()); `latency` the latency budget's record where the model was timed
    (how, before_ms, after_ms and per step its goal and the timed trial cuts).
    """

    model: nn.Module
    plan: Plan
    criterion: str
    schedule: str
    rate: float
    before: ModelCost
    after: ModelCost
    layers: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    prediction: dict[str, Any] | None = None
    left_whole: dict[str, str] = field(default_factory=dict)
    repairs: list[dict[str, Any]] = field(default_factory=list)
    unit: Unit = "channels"
    selection: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None

    @property
    def channel_rate(self) -> float:
        """Fraction of the prunable channels (coupled layers counted once) actually removed."""
        return self.history[-1]["channel_rate"]

    def removed(self, unit: Unit) -> float:
        """The share of the prunable channels, of the MACs, of the parameters or of the measured latency (0.0 where
        it was not measured) that the cut removed."""
        if unit == "channels":
            return self.channel_rate
        if unit == "latency":
            return 1.0 - self.latency["after_ms"] / self.latency["before_ms"] if self.latency else 0.0
        before, after = (self.before.macs, self.after.macs) if unit == "macs" else (self.before.params,
                                                                                    self.after.params)
        return 1.0 - after / before if before else 0.0

    @property
    def shortfall(self) -> str | None:
        """Why the cut removed less than asked, when it fell more than compress.budget.SHORTFALL short (for a
        measured latency LATENCY_SHORTFALL; else None)."""
        achieved = self.removed(self.unit)
        if self.rate - achieved <= (LATENCY_SHORTFALL if self.unit == "latency" else SHORTFALL):
            return None
        return (f"asked to remove {self.rate:.0%} of the {self.unit}, the cut removed {achieved:.1%}: the most any "
                f"layer may lose (max_layer_rate), min_channels, round_to or the groups left whole stopped it"
                + (", or the runtime's speed does not follow the MACs there" if self.unit == "latency" else ""))

    @property
    def label(self) -> str:
        """A short name for the pruned version: the criterion and what the cut saved in MACs and parameters."""
        return (f"pruned {self.criterion.split('(')[0]}: MACs -{self.removed('macs'):.0%}, "
                f"params -{self.removed('params'):.0%}")

    @property
    def narrowest(self) -> dict[str, Any] | None:
        """The pruned layer that kept the smallest share of its channels (its row), or None when nothing was cut."""
        cut = [r for r in self.layers if r["channels_after"] < r["channels_before"]]
        return max(cut, key=lambda r: (r["rate"], r["layer"]), default=None)

    def summary(self) -> dict[str, Any]:
        """JSON-able record: settings, parameters and MACs before and after, per-layer rows, history, prediction."""
        narrowest = self.narrowest
        units = ("channels", "macs", "params", *(("latency",) if self.latency else ()))
        return {
            "criterion": self.criterion, "schedule": self.schedule, "rate_requested": self.rate, "unit": self.unit,
            "channel_rate": self.channel_rate, "removed": {u: self.removed(u) for u in units},
            "shortfall": self.shortfall,
            "narrowest_layer": None if narrowest is None else {
                k: narrowest[k] for k in ("layer", "channels_before", "channels_after", "rate")},
            "params_before": self.before.params, "params_after": self.after.params,
            "macs_before": self.before.macs, "macs_after": self.after.macs,
            "layers": self.layers, "history": self.history, "prediction": self.prediction, "plan": self.plan,
            "left_whole": self.left_whole, "repair": self.repairs, "composite_selection": self.selection,
            "latency_budget": self.latency,
        }


def _validate(rate: float, ranking: Ranking, unit: Unit, steps: Schedule, latency: LatencyMeter | None) -> None:
    if unit == "latency" and latency is None:
        raise UserError("a budget in latency needs a meter to time the model with",
                        "give latency=LatencyMeter(measure, how), or budget in macs or params")
    if not 0.0 <= rate < 1.0:
        raise UserError(f"pruning rate must be in [0, 1), got {rate}", "give a fraction such as 0.5")
    if unit != "channels" and not hasattr(steps, "rates"):
        raise UserError(f"a budget in {unit} needs a schedule of rates (oneshot or iterative); {steps.name} sets how "
                        "much goes by itself", "prune with the oneshot or iterative schedule, or give a channel rate")
    if unit == "channels" and rate > ranking.max_layer_rate:
        raise UserError(f"pruning rate {rate} is above the most any layer may lose ({ranking.max_layer_rate})",
                        f"lower the rate, or raise max_layer_rate to at least {rate}")


def _layer_rows(before: ModelCost, after: ModelCost, prunable: set[str]) -> list[dict[str, Any]]:
    after_by_name = {layer.name: layer for layer in after.layers}
    rows = []
    for layer in before.layers:
        new = after_by_name[layer.name]
        c0, c1 = layer.weight_shape[0], new.weight_shape[0]
        if "Transpose" in layer.kind:
            c0, c1 = layer.weight_shape[1], new.weight_shape[1]
        rows.append({"layer": layer.name, "kind": layer.kind, "prunable": layer.name in prunable,
                     "channels_before": c0, "channels_after": c1, "rate": 1.0 - c1 / c0,
                     "params_before": layer.params, "params_after": new.params,
                     "macs_before": layer.macs, "macs_after": new.macs,
                     "weight_shape_before": list(layer.weight_shape), "weight_shape_after": list(new.weight_shape)})
    return rows


def _remove(graph: ChannelGraph, removal: Plan, plan: Plan, kept: Plan) -> int:
    """Remove `removal`'s channels; `plan` (by group) and `kept` (by layer) keep the original indices that remain."""
    for group, idxs in removal.items():
        drop = set(idxs)
        plan[group] = [k for i, k in enumerate(plan[group]) if i not in drop]
    for name, idxs in graph.layer_channels(removal).items():
        module = graph.model.get_submodule(name)
        drop = set(idxs)
        now = kept.get(name, list(range(module.weight.shape[output_axis(module)])))
        kept[name] = [k for i, k in enumerate(now) if i not in drop]
    graph.remove(removal)
    return sum(len(i) for i in removal.values())


class Pruner:
    """One pruning run, as Torch-Pruning's pruners hold it: the working copy of the model, its channel graph and the
    channels kept so far; each `step()` makes the schedule's next cut, repairs it and records it, and `result()` is
    the pruned model with its report.

    `criterion` scores channels on `ref`; `schedule` is `oneshot` (remove `rate` of the prunable channels at once),
    `iterative` (`step` of the original channels per step up to `rate`, re-scoring, and fine-tuning when `finetune`
    is given, between steps), `adaptive` (seed 002's threshold median x SF^(C0/Ct) per group until nothing more
    falls below it; `rate` is then unused; the Lambert-W prediction is reported beside the observed counts), any
    Schedule object, or the name of one registered (compress.schedules). `unit` says what `rate` (and each step's
    rate) counts: the prunable channels, or the model's MACs or parameters (compress.budget finds the channel rate
    of the ranking that meets it), or its latency as `latency` (a compress.budget.LatencyMeter) measures it: timed
    trial cuts at MAC budgets find the smallest that meets it, and every step's model is timed too. A group whose
    cut breaks the network is left whole in the same run. After every cut, `repair` (compress.repair; None: off)
    refits the layers that read pruned channels and re-estimates batch-norm statistics towards the unpruned network
    on `calibration` inputs (default: the reference samples), keeping each part only where it helps; then `finetune`
    runs (compress.tuning.tune distils without labels; a record it returns joins the step's history) and `evaluate`,
    when given, scores the model for the history. A model returning a dict, tuple or list is scored by the tensor
    `output` names (default: a dict's 'out', else the first tensor; for detection samples, a known detector's class
    scores, see compress.detectors). The input model is not changed.
    """

    def __init__(self, model: nn.Module, ref: ReferenceSamples, criterion: str | Criterion = "lrp",
                 rate: float = 0.5, schedule: str | Schedule = "oneshot", *, ranking: Ranking | None = None,
                 ignore: tuple[str, ...] = (), step: float = 0.05, sf: float = 0.5, max_steps: int = MAX_STEPS,
                 criterion_options: dict[str, Any] | None = None,
                 finetune: Callable[[nn.Module], dict[str, Any] | None] | None = None,
                 evaluate: Callable[[nn.Module], float] | None = None, output: OutputKey = None,
                 repair: Repair | None = REPAIR, calibration: torch.Tensor | None = None,
                 unit: Unit = "channels", latency: LatencyMeter | None = None) -> None:
        check_module(model)
        check_reference(ref)
        self.ranking = ranking or Ranking()
        self.schedule = get_schedule(schedule, rate=rate, step=step, sf=sf, max_steps=max_steps)
        _validate(rate, self.ranking, unit, self.schedule, latency)
        self.scorer = get_criterion(criterion, **(criterion_options or {}))
        self.ref, self.rate, self.unit, self.ignore, self.latency = ref, rate, unit, ignore, latency
        self.output = detection_output(model) if output is None and ref.task == "detection" else output
        self.finetune, self.evaluate, self.repair = finetune, evaluate, repair
        self.work = written_out_copy(model)
        self.example = ref.x[:1].to(device_of(self.work))
        # what the model cannot take shows before any work
        self.reference_shapes = shapes(run_on_samples(self.work, ref, self.output, count=1))
        self.before = self._cost()
        self.graph = ChannelGraph(self.work, self.example, ignore)
        if not self.graph.groups:
            raise PruningError(_nothing_prunable(self.work, self.graph.skipped), _NOTHING_FIX)
        self.original = {g.name: g.channels for g in self.graph.groups}
        # ranking counts units: a channel, or in a group feeding a grouped convolution one channel per block
        self.original_units = {g.name: g.units for g in self.graph.groups}
        self.width = {g.name: g.width for g in self.graph.groups}
        self.plan: Plan = {g: list(range(c)) for g, c in self.original.items()}
        self.kept: Plan = {}  # per layer that lost output channels, the original indices it keeps
        self.unpruned = model_copy(self.work) if repair is not None else None
        self.calibration = ref.x if calibration is None else calibration
        self.history: list[dict[str, Any]] = []
        self.repairs: list[dict[str, Any]] = []
        self.unscored: dict[str, str] = {}
        self.broken: dict[str, str] = {}  # groups whose cut broke the network, left whole in the same run
        self.steps_done = 0
        self._stale = False  # the graph predates the last cut
        self.searches: list[dict[str, Any]] = []  # per step of a latency budget: its goal and the timed trial cuts
        self._record()

    @property
    def done(self) -> bool:
        """Whether the schedule has made its last cut (or found nothing more to cut)."""
        return self.steps_done >= self.schedule.steps

    def step(self) -> bool:
        """Make the schedule's next cut, repair and record it; False, with nothing cut, once the schedule is done."""
        if self.done:
            return False
        if self._stale:
            self.graph = ChannelGraph(self.work, self.example, self.ignore)
        index = self.steps_done + 1
        removal = self.removal(index)
        while removal is not None and not self._cut(removal):
            removal = self.removal(index)
        if removal is None:
            self.steps_done = self.schedule.steps
            return False
        self.steps_done, self._stale = index, True
        if self.unpruned is not None:
            report = repair_cut(self.unpruned, self.work, self.calibration, self.kept, self.repair)
            self.repairs.append({"step": index, **report.to_json()})
        self._record(self.finetune(self.work) if self.finetune is not None else None)
        return True

    def scores(self) -> dict[str, torch.Tensor]:
        """The criterion's score per unit of every group it reaches, on the model as cut so far."""
        names = {name for g in self.graph.groups for name, _, _ in g.members}
        with scoring(self.work, self.example, self.output):
            by_group = self.graph.group_scores(self.scorer.scores(self.work, names, self.ref))
        # a group the scored output does not reach (a detector's box branch when its class scores are scored) scores
        # only zeros: it is left whole rather than cut to the floor
        for g in self.graph.groups:
            if not by_group[g.name].any():
                self.unscored[g.name] = (f"the scored output does not depend on it, so {self.scorer.name} gives it "
                                         "no score")
        if self.graph.groups and len(self.unscored) == len(self.graph.groups):
            raise PruningError(f"{self.scorer.name} gives no layer a score: the scored output does not depend on any "
                               "of them for these samples (an untrained head initialised at zero does this)",
                               "train the model first, or score with a criterion that needs no output (l1)")
        return {g.name: g.unit_scores(by_group[g.name]) for g in self.graph.groups if g.name not in self.unscored}

    def removal(self, index: int) -> Plan | None:
        """The units step `index` removes per group (None: the schedule stops); with a budget, the removal whose
        estimated cost (or, for latency, measured latency) meets the step's rate of the unpruned model's."""
        if self.unit == "channels":
            return self.schedule.removal(index, self.scores(), self.original_units, self.ranking,
                                         self.scorer.normalization, self.width)
        unit_scores, cost = self.scores(), self._cost()

        def at(channel_rate: float) -> Plan:
            # a group a timed trial cut found breaking is left whole from then on
            scored = {g.name: unit_scores[g.name] for g in self.graph.groups if g.name in unit_scores}
            return plan_removal(scored, {g: self.original_units[g] for g in scored}, channel_rate, self.ranking,
                                self.scorer.normalization, self.width)

        def budgeted(unit: Unit, share: float) -> Plan:
            whole = self.before.macs if unit == "macs" else self.before.params
            budget = Budget(unit, self.graph, cost)
            return at(budget.channel_rate(whole * (1.0 - share), lambda r: self._channels(at(r))))

        share = self.schedule.rates[index - 1]
        if self.unit != "latency":
            return budgeted(self.unit, share)
        goal = self.history[0]["latency_ms"] * (1.0 - share)
        found, probes = latency_search(goal, lambda r: self._timed(budgeted("macs", r)),
                                       1.0 - cost.macs / self.before.macs, 0.95, self.history[-1]["latency_ms"])
        self.searches.append({"step": index, "goal_ms": goal, "probes": probes})
        return budgeted("macs", found)

    def _timed(self, removal: Plan) -> float:
        """The latency of a copy of the model with `removal` cut; the groups whose cut breaks the network are left
        whole first (as a real cut leaves them), and the rest is timed."""
        while True:
            trial = model_copy(self.work)
            try:
                ChannelGraph(trial, self.example, self.ignore).remove(self._channels(removal))
                return self.latency.measure(trial)
            except PruningError as error:
                self._leave_breaking(removal, error)
            removal = {g.name: removal[g.name] for g in self.graph.groups if g.name in removal}

    def result(self) -> PruneResult:
        """The pruned model (the working copy, now an ordinary smaller module) and its report."""
        self.work.eval()
        with torch.no_grad():
            now = shapes(self.work(self.example))
        if now != self.reference_shapes:
            raise PruningError(f"pruning changed the output shapes from {self.reference_shapes} to {now}",
                               "leave the output layers out of pruning (ignore)")
        after = self._cost()
        prunable = {name for g in self.graph.groups for name, _, _ in g.members}
        return PruneResult(self.work, self.plan, self.scorer.describe(), self.schedule.name, self.rate, self.before,
                           after, _layer_rows(self.before, after, prunable), self.history,
                           self.schedule.prediction(self.original, self.plan),
                           left_whole={**self.graph.skipped, **self.unscored, **self.broken}, repairs=self.repairs,
                           unit=self.unit, latency=self._latency_record())

    def _latency_record(self) -> dict[str, Any] | None:
        if self.latency is None:
            return None
        return {"how": self.latency.how, "before_ms": self.history[0]["latency_ms"],
                "after_ms": self.history[-1]["latency_ms"], "steps": self.searches}

    def _cost(self) -> ModelCost:
        return measure_cost(self.work, tuple(self.ref.x.shape[1:]), self.ref.x.dtype)

    def _channels(self, units: Plan) -> Plan:
        groups = {g.name: g for g in self.graph.groups}
        return {name: groups[name].channels_of(u) for name, u in units.items()}

    def _record(self, tuned: dict[str, Any] | None = None) -> None:
        cost = self._cost()
        left = sum(len(k) for k in self.plan.values())
        point = {"step": self.steps_done, "channels": left,
                 "channel_rate": 1.0 - left / max(sum(self.original.values()), 1),
                 "params": cost.params, "macs": cost.macs}
        if self.latency is not None:
            point["latency_ms"] = self.latency.measure(self.work)
        if tuned is not None:
            point["tuning"] = tuned
        if self.evaluate is not None:
            point["score"] = self.evaluate(self.work)
        self.history.append(point)

    def _cut(self, removal: Plan) -> bool:
        """Remove `removal`'s units; False when that broke the network: then the model is as before the cut, and the
        groups whose cut alone breaks it are left whole (with why) in a new graph, for the step to be planned again."""
        before_cut = model_copy((self.work, self.plan, self.kept))
        try:
            _remove(self.graph, self._channels(removal), self.plan, self.kept)
            return True
        except PruningError as error:
            self.work, self.plan, self.kept = before_cut
            self._leave_breaking(removal, error)
        return False

    def _leave_breaking(self, removal: Plan, error: PruningError) -> None:
        """Leave whole, in a new graph, the groups whose cut alone (of `removal`) breaks the network, with why;
        `error` (what cutting all of them raised) goes on when no one group breaks it alone."""
        breaking = breaking_removals(self.work, self.example, self.ignore, self._channels(removal))
        if not breaking:
            raise error
        self.broken.update(breaking)
        self.ignore = (*self.ignore, *breaking)
        self.graph = ChannelGraph(self.work, self.example, self.ignore)
        if not self.graph.groups:
            raise PruningError(_nothing_prunable(self.work, {**self.graph.skipped, **self.broken}), _NOTHING_FIX)


def prune(model: nn.Module, ref: ReferenceSamples, criterion: str | Criterion = "lrp", rate: float = 0.5,
          schedule: str | Schedule = "oneshot", **settings: Any) -> PruneResult:
    """Prune `model`'s channels scored by `criterion` on `ref` at `rate` by `schedule`, the pruned channels physically
    removed: a Pruner run to the end of its schedule. `settings` are the Pruner's keyword arguments (ranking, ignore,
    unit, repair, calibration, finetune, ...); the input model is not changed."""
    pruner = Pruner(model, ref, criterion, rate, schedule, **settings)
    while pruner.step():
        pass
    return pruner.result()


_NOTHING_FIX = "compress it by quantization alone (edgewise quantize), or leave fewer layers whole"


def _nothing_prunable(model: nn.Module, skipped: dict[str, str]) -> str:
    """Why no channel of `model` can be cut: the groups left whole and the recurrent layers it holds."""
    recurrent = [name for name, m in model.named_modules() if isinstance(m, RECURRENT_LAYERS)]
    why = "no channel of this model can be pruned"
    if skipped:
        group, reason = next(iter(skipped.items()))
        why += f": {len(skipped)} group(s) must stay whole ({group}: {reason})"
    if recurrent:
        why += (f"; the hidden units of its recurrent layers ({', '.join(recurrent[:3])}) are not cut, since "
                "torch-pruning cannot cut them with their gates")
    return why


def apply_plan(model: nn.Module, plan: Plan, example_input: torch.Tensor, ignore: tuple[str, ...] = ()
               ) -> nn.Module:
    """A copy of `model` with only the channels `plan` keeps (original indices per group), physically removed: the cut
    as prune made it, before any repair refitted weights."""
    work = written_out_copy(model)
    graph = ChannelGraph(work, example_input, ignore)
    removal = {}
    for g in graph.groups:
        if g.name not in plan:
            continue
        keep = set(plan[g.name])
        if not keep:
            raise PruningError(f"the plan keeps no channel of group {g.name}", "keep at least one channel per group")
        removal[g.name] = [i for i in range(g.channels) if i not in keep]
    graph.remove(removal)
    return work
