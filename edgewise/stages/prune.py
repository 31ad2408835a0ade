"""The prune and experts stages: structured pruning of the float model, and class-specific experts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import compress
from bench.report import Section
from bench.units import si
from compress.size import ladder_row, weight_count
from edgewise.atomic import write_json
from edgewise.modelio import load_model, save_model
from edgewise.recipe import ExpertConfig, FinetuneConfig, PruneConfig
from edgewise.rundir import StageWindow
from edgewise.stages.state import ModelState, class_score, score_model
from edgewise.zoo.dataset import Dataset, Split
from edgewise.zoo.training import evaluate, fit


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


def prune_model(module: nn.Module, data: Dataset, config: PruneConfig, classes: tuple[int, ...] | None = None,
                finetune: Callable[[nn.Module], None] | None = None) -> compress.PruneResult:
    """Prune `module` as `config` says, scoring on the validation split (restricted to `classes` if given)."""
    ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, config.samples_per_class, classes,
                                               output=config.output)
    return compress.prune(
        module, ref, config.criterion, config.rate, config.schedule, ranking=config.ranking(),
        ignore=tuple(config.ignore), step=config.step, sf=config.sf, criterion_options=config.options,
        finetune=finetune, evaluate=lambda m: evaluate(m, data.val, data.task)["score"],
    )


def _run_prune(state: ModelState, config: PruneConfig, classes: tuple[int, ...] | None) -> compress.PruneResult:
    return prune_model(state.model, state.data, config, classes, finetuner(state, config.finetune, classes))


def _layer_section(title: str, result: compress.PruneResult) -> Section:
    rows = [(r["layer"], r["kind"], f"{r['channels_before']} -> {r['channels_after']}", f"{r['rate']:.0%}",
             f"{si(r['params_before'])} -> {si(r['params_after'])}", f"{si(r['macs_before'])} -> {si(r['macs_after'])}")
            for r in result.layers]
    note = (f"{result.criterion}, {result.schedule}: {result.channel_rate:.0%} of the prunable channels removed; "
            f"parameters {si(result.before.params)} -> {si(result.after.params)}, "
            f"MACs {si(result.before.macs)} -> {si(result.after.macs)} "
            f"({1 - result.after.macs / result.before.macs:.0%} less compute).")
    if result.prediction:
        prediction = result.prediction
        note += (f" Adaptive threshold SF={prediction['sf']}: Lambert-W prediction "
                 f"{prediction['predicted_total']:.1f} channels, observed {prediction['observed_total']}.")
    return Section(title, ("layer", "kind", "channels", "pruned", "parameters", "MACs / sample"), rows, note)


def _settings(config: PruneConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def prune_stage(state: ModelState, config: PruneConfig) -> None:
    """Prune the float model as configured, save it (it reloads with its smaller shapes), and score it."""
    name = state.entry.name

    def prune(st: StageWindow) -> dict[str, Any]:
        result = _run_prune(state, config, None)
        label = f"pruned {config.criterion} {result.channel_rate:.0%}"
        st.add_output(save_model(result.model, st.path("model.pt"),
                                 {**state.card, "stage": label, "prune": config.rate}))
        st.add_output(write_json(st.path("prune.json"), result.summary()))
        row = score_model(state, st, result.model, label)
        st.metrics.update(channel_rate=result.channel_rate, float_score=state.float_score)
        return {"label": label, "rows": [row], "sections": [_layer_section(f"Pruning of {name}", result).to_json()],
                "ladder": [ladder_row(label, row["size_bytes"], weight_count(result.model), row["score"])]}

    out = state.stage("prune", _settings(config), [state.model_path], prune)
    module, _ = load_model(out.files["model.pt"])
    state.advance(module, out["label"], out.files["model.pt"])
    state.pruned = (out["rows"][0], module)
    state.pruned_path = out.files["model.pt"]


def experts_stage(state: ModelState, experts: list[ExpertConfig], unions: list[list[str]]) -> None:
    """Derive each class-specific expert, the requested unions, and the per-layer path-similarity table."""
    plans: dict[str, Path] = {}
    for config in experts:
        classes = state.class_indices(config.classes)

        def expert(st: StageWindow, config: ExpertConfig = config, classes: tuple[int, ...] = classes) -> dict:
            result = _run_prune(state, config, classes)
            label = f"expert {config.name} ({config.criterion} {result.channel_rate:.0%})"
            st.add_output(save_model(result.model, st.path("model.pt"),
                                     {**state.card, "stage": label, "expert_classes": list(config.classes)}))
            st.add_output(write_json(st.path("prune.json"), result.summary()))
            row = score_model(state, st, result.model, label, classes=classes)
            row["float_class_score"] = score_model(state, None, state.model, "float32", classes=classes)["score"]
            st.metrics.update(channel_rate=result.channel_rate, float_class_score=row["float_class_score"])
            return {"rows": [row]}

        out = state.stage(f"expert-{config.name}", _settings(config), [state.model_path], expert)
        plans[config.name] = out.files["prune.json"]
    example = state.data.val.x[:1]
    for group in unions:
        label = "+".join(group)

        def union(st: StageWindow, group: list[str] = group, label: str = label) -> dict[str, Any]:
            module = compress.combine(state.model, {g: _plan(plans[g]) for g in group}, example)
            st.add_output(save_model(module, st.path("model.pt"), {**state.card, "stage": f"union {label}"}))
            classes = state.class_indices([c for e in experts if e.name in group for c in e.classes])
            return {"rows": [score_model(state, st, module, f"union {label}", classes=classes)]}

        state.stage(f"union-{label}", {"experts": group}, [state.model_path, *(plans[g] for g in group)], union)
    if plans:
        state.stage("expert-table", {}, [state.model_path, *plans.values()],
                    lambda st: {"sections": [_expert_section(state, st, plans, example)]})


def _plan(path: Path) -> compress.Plan:
    return {layer: list(kept) for layer, kept in json.loads(path.read_text(encoding="utf-8"))["plan"].items()}


def _expert_section(state: ModelState, st: StageWindow, plans: dict[str, Path], example: torch.Tensor) -> dict:
    table = compress.expert_table(state.model, {e: _plan(p) for e, p in plans.items()}, example)
    st.add_output(write_json(st.path("experts.json"), table))
    return Section(
        f"Experts of {state.entry.name}: path similarity per layer",
        ("layer", "channels", "path similarity", *(f"pruned ({e})" for e in plans), "parameter share"),
        [(r["layer"] + (f" (+{len(r['coupled_layers'])} coupled)" if r["coupled_layers"] else ""),
          str(r["channels"]), f"{r['path_similarity']:.2f}",
          *(f"{r['pruning_rate'][e]:.0%}" for e in plans), f"{r['parameter_share']:.1%}") for r in table],
        "Path similarity: kept channels shared by all experts over those kept by any (1 = the same path).",
    ).to_json()
