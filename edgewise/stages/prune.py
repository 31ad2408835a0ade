"""The prune stage: structured pruning of the float model into the pruned version, channels physically removed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from edgewise import compress
from edgewise.base.atomic import write_json
from edgewise.base.device import device_of
from edgewise.bench.latency import SHORT, module_latency
from edgewise.board.errors import UserError
from edgewise.compress.budget import LatencyMeter, latency_share
from edgewise.compress.composites import AUTO, select_composite, selection_line
from edgewise.compress.size import ladder_row, weight_count
from edgewise.compress.tuning import Tuning, tune
from edgewise.core.ledger import PRUNED, TORCH
from edgewise.core.modelio import save_model
from edgewise.core.rundir import StageWindow
from edgewise.report.section import Section
from edgewise.report.units import si
from edgewise.stages.prune_config import PruneConfig
from edgewise.stages.scoring import class_score, score_model
from edgewise.stages.state import ModelState
from edgewise.zoo.dataset import Dataset, Split
from edgewise.zoo.training import evaluate, fit
from edgewise.zoo.training_config import FinetuneConfig


def finetuner(state: ModelState, config: FinetuneConfig | None,
              classes: tuple[int, ...] | None = None) -> Callable[[nn.Module], None] | None:
    """The fine-tuning callback for compress (None without a config); experts train for their own classes."""
    if config is None:
        return None
    data, settings = state.data, config.train_config()
    loss_fn = score_fn = None
    if classes is not None:
        loss_fn = compress.expert_loss(classes)

        def score_fn(module: nn.Module, split: Split) -> float:
            return class_score(module, split, data, classes)

    def finetune(module: nn.Module) -> None:
        fit(module, data, settings, seed=state.entry.seed, label=f"fine-tune {state.entry.name}",
            loss_fn=loss_fn, score_fn=score_fn)

    return finetune


def tuner(teacher: nn.Module, x: torch.Tensor, y: torch.Tensor | None, task: str, config: PruneConfig
          ) -> Callable[[nn.Module], dict[str, Any]] | None:
    """The tuning callback `config` asks for (None without tune_steps): compress.tuning.tune on `x`, distilled from
    `teacher` (the unpruned model) when config.tune_targets says so or, at auto, where there are no labels `y`."""
    if not config.tune_steps:
        return None

    distil = config.tune_targets == "distill" or (config.tune_targets == "auto" and y is None)
    if not distil and y is None:
        raise UserError("tune_targets labels, but the data has no labels", "tune with tune_targets distill (or auto)")
    settings = Tuning(steps=config.tune_steps, lr=config.tune_lr)
    return lambda m: tune(m, x, task, settings, teacher=teacher if distil else None, y=None if distil else y)


def prune_as_configured(module: nn.Module, ref: compress.ReferenceSamples, config: PruneConfig,
                        finetune: Callable[[nn.Module], Any] | None = None,
                        evaluate: Callable[[nn.Module], float] | None = None,
                        calibration: torch.Tensor | None = None) -> compress.PruneResult:
    """compress.prune of `module` on the reference samples `ref` with every setting `config` gives; repair reads
    `calibration` (default: the reference samples). With composite auto (config.chosen_composite: the default for
    an LRP cut over all classes), compress.composites.select_composite chooses the LRP rules first (its record
    joins the result's `selection`; for a latency budget its trial cuts remove the same share of the MACs,
    untimed). A latency budget times with latency_meter at batch 1, so its cut depends on this machine's speed."""
    calibration = ref.x if calibration is None else calibration
    shared = {"ranking": config.ranking(), "ignore": tuple(config.ignore), "repair": config.repair_settings(),
              "unit": config.unit}
    rate, meter = config.rate, None
    if config.unit == "latency":
        meter = latency_meter(ref.x[:1])
        if config.latency_ms is not None:
            rate = latency_share(config.latency_ms, meter.measure(module), meter.how)
    options, selection = config.criterion_options(), None
    if config.chosen_composite(ref.classes is not None, len(calibration)) == AUTO:
        selection = select_composite(module, ref, rate, calibration,
                                     **{**shared, "unit": "macs" if meter else config.unit})
        options = {**options, "rules": selection.rules}
    result = compress.prune(module, ref, config.criterion, rate, config.schedule, step=config.step,
                            sf=config.sf, criterion_options=options, finetune=finetune, evaluate=evaluate,
                            calibration=calibration, latency=meter, **shared)
    result.selection = None if selection is None else selection.to_json()
    return result


TIMINGS = 3
"""How many times a latency budget times each model, keeping the lowest median (bench.latency.module_latency): one
timing of a model can be 60% slow on this VM with nothing to show it."""


def latency_meter(example: torch.Tensor) -> LatencyMeter:
    """How a latency budget times a model: exported as the kit ships it and run in ONNX Runtime on this CPU at
    `example`'s batch (bench.latency.module_latency, its short measurement, TIMINGS times), the lowest median in
    milliseconds."""
    def measure(model: nn.Module) -> float:
        return module_latency(model, example.to(device_of(model)), SHORT, timings=TIMINGS)["median_ms"]

    return LatencyMeter(measure, f"measured: ONNX Runtime on this CPU, batch {len(example)}, median of at least "
                                 f"{SHORT.iterations} runs, the lowest of {TIMINGS} timings")


def calibration_inputs(x: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """`count` of the inputs `x`, drawn at random (a split may be ordered by class)."""
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:count]]


def prune_model(module: nn.Module, data: Dataset, config: PruneConfig, classes: tuple[int, ...] | None = None,
                finetune: Callable[[nn.Module], Any] | None = None) -> compress.PruneResult:
    """Prune `module` as `config` says, scoring on the validation split (restricted to `classes` if given);
    repair reads a draw of the training split's inputs, and tuning (where `finetune` is not given) the whole split,
    labels only where they are the data's own."""
    ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, config.samples_per_class, classes,
                                               output=config.output)
    if finetune is None:
        labels = data.train.y if data.reference is None else None
        finetune = tuner(module, data.train.x, labels, data.task, config)
    return prune_as_configured(module, ref, config, finetune, lambda m: evaluate(m, data.val, data.task)["score"],
                               calibration_inputs(data.train.x, config.calibration_samples))


def step_lines(result: compress.PruneResult) -> list[str]:
    """How the LRP composite was chosen (where it was), and what repair and tuning did after each step, a sentence
    each: the held-out output error against the unpruned network before and after repair, with what each part did;
    tuning's held-out loss and the step it kept."""
    lines = [] if result.selection is None else [selection_line(result.selection)]
    for record in result.repairs:
        parts = ", ".join(f"{p['part']} {'kept' if p['kept'] else 'undone'}" for p in record["parts"])
        lines.append(f"Repair after step {record['step']}: held-out output error against the unpruned network "
                     f"{record['error_before']:.3g} -> {record['error_after']:.3g} ({parts})")
    for point in result.history:
        if "tuning" in point:
            tuned = point["tuning"]
            kept = (f"kept step {tuned['kept_step']}" if tuned["kept_step"]
                    else "no step lowered it: the cut is kept as repaired")
            lines.append(f"Tuning after step {point['step']}: {tuned['steps']} steps ({tuned['targets']}), "
                         f"held-out loss {tuned['held_out_loss_before']:.4g} -> {tuned['held_out_loss_after']:.4g}, "
                         f"{kept}")
    return lines


def latency_budget_line(result: compress.PruneResult) -> str:
    """What a latency budget measured: the latency before and after, how it was measured, the last step's goal and
    how many trial cuts were timed to meet it."""
    record = result.latency
    goal = next((f", goal {s['goal_ms']:.3g} ms" for s in reversed(record["steps"])), "")
    probes = sum(len(s["probes"]) for s in record["steps"])
    return (f"latency ({record['how']}): {record['before_ms']:.3g} ms -> {record['after_ms']:.3g} ms "
            f"({-result.removed('latency'):+.0%}){goal}, {probes} trial cut{'' if probes == 1 else 's'} timed")


def layer_section(title: str, result: compress.PruneResult) -> Section:
    """Per layer: channels before and after, the share removed, parameters and MACs; with the totals in the note."""
    rows = [(r["layer"], r["kind"], f"{r['channels_before']} -> {r['channels_after']}", f"{r['rate']:.0%}",
             f"{si(r['params_before'])} -> {si(r['params_after'])}", f"{si(r['macs_before'])} -> {si(r['macs_after'])}")
            for r in result.layers]
    note = (f"{result.criterion}, {result.schedule}: {result.channel_rate:.0%} of the prunable channels removed; "
            f"parameters {si(result.before.params)} -> {si(result.after.params)}, "
            f"MACs {si(result.before.macs)} -> {si(result.after.macs)} "
            f"({1 - result.after.macs / result.before.macs:.0%} less compute).")
    if result.narrowest:
        n = result.narrowest
        note += f" Narrowest layer: {n['layer']}, {n['channels_before']} -> {n['channels_after']} channels."
    if result.latency:
        note += f" The {latency_budget_line(result)}."
    if result.shortfall:
        note += f" Short of the target: {result.shortfall}."
    for group, why in result.left_whole.items():
        note += f" Left whole: {group} ({why})."
    note += "".join(f" {line}." for line in step_lines(result))
    if result.prediction:
        prediction = result.prediction
        note += (f" Adaptive threshold SF={prediction['sf']}: Lambert-W prediction "
                 f"{prediction['predicted_total']:.1f} channels, observed {prediction['observed_total']}.")
    return Section(title, ("layer", "kind", "channels", "pruned", "parameters", "MACs / sample"), rows, note)


def prune_stage(state: ModelState, config: PruneConfig) -> None:
    """Prune the working model as configured into the pruned version (it reloads with its smaller shapes), score it."""
    source = state.ledger.working()

    def prune(st: StageWindow) -> dict[str, Any]:
        result = prune_model(state.compute_module(source), state.data, config, None, finetuner(state, config.finetune))
        label = result.label
        st.add_output(save_model(result.model, st.path("model.pt"),
                                 {**state.card, "stage": label, "prune": config.rate, "prune_unit": config.unit}))
        st.add_output(write_json(st.path("prune.json"), result.summary()))
        row = score_model(state, st, result.model, label)
        st.metrics.update(channel_rate=result.channel_rate, float_score=state.base.row["score"])
        return {"versions": [{"id": PRUNED, "kind": PRUNED, "label": label, "parent": source.id, "row": row,
                              "files": {TORCH: "model.pt"},
                              "rung": ladder_row(label, row["size_bytes"], weight_count(result.model), row["score"])}],
                "sections": [layer_section(f"Pruning of {state.entry.name}", result).to_json()]}

    state.stage("prune", config.model_dump(mode="json"), [source.files[TORCH]], prune)
