"""The experts stage: class-specific experts pruned from the float model, their unions, and the path-similarity
table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from edgewise import compress
from edgewise.base.atomic import write_json
from edgewise.core.ledger import EXPERT, TORCH, UNION
from edgewise.core.modelio import save_model
from edgewise.core.rundir import StageWindow
from edgewise.report.section import Section
from edgewise.stages.experts_config import ExpertConfig
from edgewise.stages.prune import finetuner, prune_model
from edgewise.stages.scoring import score_model
from edgewise.stages.state import ModelState


def experts_stage(state: ModelState, experts: list[ExpertConfig]) -> None:
    """Derive each class-specific expert, the recipe's unions of experts, and the per-layer path-similarity table."""
    base = state.base
    model = state.compute_module(base)
    plans: dict[str, Path] = {}
    for config in experts:
        classes = state.class_indices(config.classes)

        def expert(st: StageWindow, config: ExpertConfig = config, classes: tuple[int, ...] = classes) -> dict:
            result = prune_model(model, state.data, config, classes, finetuner(state, config.finetune, classes))
            label = f"expert {config.name} ({result.label.removeprefix('pruned ')})"
            st.add_output(save_model(result.model, st.path("model.pt"),
                                     {**state.card, "stage": label, "expert_classes": list(config.classes)}))
            row = score_model(state, st, result.model, label, classes=classes)
            row["float_class_score"] = score_model(state, None, model, base.label, classes=classes)["score"]
            st.add_output(write_json(st.path("prune.json"), {
                **result.summary(), "expert": {"classes": list(config.classes), "score_name": row["score_name"],
                                               "score": row["score"], "tuned": config.finetune is not None}}))
            st.metrics.update(channel_rate=result.channel_rate, float_class_score=row["float_class_score"])
            return {"versions": [{"id": f"expert-{config.name}", "kind": EXPERT, "label": label, "parent": base.id,
                                  "row": row, "files": {TORCH: "model.pt"}}]}

        out = state.stage(f"expert-{config.name}", config.model_dump(mode="json"), [base.files[TORCH]], expert)
        plans[config.name] = out.files["prune.json"]
    example = state.data.val.x[:1]
    for group in state.entry.expert_unions:
        label = "+".join(group)

        def union(st: StageWindow, group: list[str] = group, label: str = label) -> dict[str, Any]:
            module = compress.combine(model, {g: _plan(plans[g]) for g in group}, example)
            st.add_output(save_model(module, st.path("model.pt"), {**state.card, "stage": f"union {label}"}))
            classes = state.class_indices([c for e in experts if e.name in group for c in e.classes])
            row = score_model(state, st, module, f"union {label}", classes=classes)
            return {"versions": [{"id": f"union-{label}", "kind": UNION, "label": f"union {label}",
                                  "parent": base.id, "row": row, "files": {TORCH: "model.pt"}}]}

        state.stage(f"union-{label}", {"experts": group}, [base.files[TORCH], *(plans[g] for g in group)], union)
    state.stage("expert-table", {}, [base.files[TORCH], *plans.values()],
                lambda st: {"sections": [_expert_section(state, st, plans, example)]})


def _plan(path: Path) -> compress.Plan:
    return {layer: list(kept) for layer, kept in json.loads(path.read_text(encoding="utf-8"))["plan"].items()}


def comparison_lines(records: dict[str, dict[str, Any]]) -> list[str]:
    """Per set of classes that two or more experts serve, a sentence comparing them: each one's criterion, whether
    it was fine-tuned, the MACs its cut removed and its score, best first; the sentence names the best one within
    each regime (as cut, fine-tuned), so a criterion that wins only before fine-tuning is seen to."""
    by_classes: dict[tuple[str, ...], list[tuple[str, dict[str, Any]]]] = {}
    for name, record in records.items():
        by_classes.setdefault(tuple(record["expert"]["classes"]), []).append((name, record))
    lines = []
    for classes, members in by_classes.items():
        if len(members) < 2:
            continue
        members.sort(key=lambda m: -m[1]["expert"]["score"])
        shown = "; ".join(
            f"{name} ({record['criterion'].split('(')[0]}, {'fine-tuned' if record['expert']['tuned'] else 'as cut'}, "
            f"MACs -{record['removed']['macs']:.0%}) {record['expert']['score']:.3f}" for name, record in members)
        best = []
        for tuned, regime in ((False, "as cut"), (True, "fine-tuned")):
            ranked = [name for name, record in members if record["expert"]["tuned"] == tuned]
            if ranked:
                best.append(f"{regime}: {ranked[0]}")
        lines.append(f"Experts for {', '.join(classes)} by {members[0][1]['expert']['score_name']}: {shown}. "
                     f"Best {', '.join(best)}.")
    return lines


def _expert_section(state: ModelState, st: StageWindow, plans: dict[str, Path], example: torch.Tensor) -> dict:
    records = {e: json.loads(p.read_text(encoding="utf-8")) for e, p in plans.items()}
    table = compress.expert_table(state.module(state.base), {e: _plan(p) for e, p in plans.items()}, example)
    st.add_output(write_json(st.path("experts.json"), table))
    return Section(
        f"Experts of {state.entry.name}: path similarity per layer",
        ("layer", "channels", "path similarity", *(f"pruned ({e})" for e in plans), "parameter share"),
        [(r["layer"] + (f" (+{len(r['coupled_layers'])} coupled)" if r["coupled_layers"] else ""),
          str(r["channels"]), f"{r['path_similarity']:.2f}",
          *(f"{r['pruning_rate'][e]:.0%}" for e in plans), f"{r['parameter_share']:.1%}") for r in table],
        " ".join(["Path similarity: kept channels shared by all experts over those kept by any (1 = the same path).",
                  *comparison_lines(records)]),
    ).to_json()
