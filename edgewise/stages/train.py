"""The train stage: the float32 version, from the user's file, the model cache or training; then its score."""

from __future__ import annotations

from typing import Any

from edgewise.compress.size import ladder_row, weight_count
from edgewise.core.ledger import FLOAT32, TORCH
from edgewise.core.modelio import load_model, load_weights, save_model
from edgewise.core.rundir import StageWindow
from edgewise.stages.scoring import score_model
from edgewise.stages.state import ModelState
from edgewise.zoo.cache import trained_model
from edgewise.zoo.fit_check import check_module_fits
from edgewise.zoo.models import build_model
from edgewise.zoo.training_config import TrainConfig

FLOAT32_VERSION = {"id": FLOAT32, "kind": FLOAT32, "label": "float32", "files": {TORCH: "model.pt"}}


def _bring(state: ModelState, st: StageWindow) -> dict[str, Any]:
    """The user's own trained torch model: checked against the data, then kept in the run directory."""
    entry = state.entry
    module, card = load_model(entry.file, entry.trusted)
    check_module_fits(module, state.data, entry.file)
    card = {**card, "source": str(entry.file), "data_spec": entry.data.model_dump(mode="json"), "stage": "float32",
            "input_shape": list(state.data.input_shape), "task": state.data.task,
            "class_names": list(state.data.class_names)}
    st.add_output(save_model(module, st.path("model.pt"), card))
    return {"versions": [FLOAT32_VERSION]}


def _with_weights(state: ModelState, st: StageWindow) -> dict[str, Any]:
    """The architecture built for the data with the user's state_dict loaded into it (no training)."""
    entry = state.entry
    module = build_model(entry.arch, state.data.input_shape, state.data.num_classes, **entry.arch_args)
    load_weights(module, entry.weights)
    check_module_fits(module.eval(), state.data, entry.weights)
    card = {"arch": entry.arch, "arch_args": entry.arch_args, "source": str(entry.weights),
            "data_spec": entry.data.model_dump(mode="json"), "stage": "float32",
            "input_shape": list(state.data.input_shape), "task": state.data.task,
            "class_names": list(state.data.class_names)}
    st.add_output(save_model(module, st.path("model.pt"), card))
    return {"versions": [FLOAT32_VERSION]}


def train_stage(state: ModelState, config: TrainConfig) -> None:
    """Obtain the trained float model (the user's file, the cache or training), keep it in the run directory as the
    float32 version, and score it."""
    entry = state.entry
    params = {"arch": entry.arch, "arch_args": entry.arch_args, "data": entry.data.model_dump(mode="json"),
              "train": config.model_dump(), "seed": entry.seed}

    def train(st: StageWindow) -> dict[str, Any]:
        trained = trained_model(entry.arch, state.data, config, entry.seed, entry.arch_args,
                                label=f"train {entry.name}", device=state.device)
        st.add_input(trained.path)
        card = {**trained.card, "data_spec": entry.data.model_dump(mode="json"), "stage": "float32"}
        st.add_output(save_model(trained.module, st.path("model.pt"), card))
        history = trained.card["history"]
        st.metrics.update(from_cache=trained.cached, device=trained.card.get("device", "cpu"),
                          epochs_run=history["epochs_run"], best_val_score=history["best_val_score"])
        return {"versions": [FLOAT32_VERSION]}

    if entry.file is not None:
        state.stage("train", {"file": str(entry.file)}, [entry.file], lambda st: _bring(state, st))
    elif entry.weights is not None:
        state.stage("train", {**params, "weights": str(entry.weights)}, [entry.weights],
                    lambda st: _with_weights(state, st))
    else:
        state.stage("train", params, [], train)
    version = state.ledger[FLOAT32]

    def evaluate(st: StageWindow) -> dict[str, Any]:
        module = state.compute_module(version)
        row = score_model(state, st, module, version.label)
        return {"versions": [{"id": FLOAT32, "row": row,
                              "rung": ladder_row("float32", row["size_bytes"], weight_count(module), row["score"])}]}

    state.stage("evaluate", {"split": "test", "stage": "float32"}, [version.files[TORCH]], evaluate)
