"""The train stage: load the model from the cache or train it, then evaluate the float32 model."""

from __future__ import annotations

from typing import Any

import torch

from compress.size import ladder_row, weight_count
from edgewise.modelio import load_model, save_model
from edgewise.rundir import StageWindow
from edgewise.stages.state import ModelState, score_model
from edgewise.zoo.cache import trained_model
from edgewise.zoo.fit_check import check_fits


def _bring(state: ModelState, st: StageWindow) -> dict[str, Any]:
    """The user's own trained torch model: checked against the data, then kept in the run directory."""
    entry = state.entry
    module, card = load_model(entry.file)
    with torch.no_grad():
        check_fits(lambda x: module(torch.from_numpy(x)).numpy(), state.data, entry.file)
    card = {**card, "source": str(entry.file), "data_spec": entry.data.model_dump(mode="json"), "stage": "float32",
            "input_shape": list(state.data.input_shape), "task": state.data.task,
            "class_names": list(state.data.class_names)}
    st.add_output(save_model(module, st.path("model.pt"), card))
    return {}


def train_stage(state: ModelState) -> None:
    """Obtain the trained float model (the user's file, the cache or training), save it in the run directory,
    and score it."""
    entry = state.entry
    params = {"arch": entry.arch, "arch_args": entry.arch_args, "data": entry.data.model_dump(mode="json"),
              "train": entry.train.model_dump(), "seed": entry.seed}

    def train(st: StageWindow) -> dict[str, Any]:
        trained = trained_model(entry.arch, state.data, entry.train, entry.seed, entry.arch_args,
                                label=f"train {entry.name}")
        st.add_input(trained.path)
        card = {**trained.card, "data_spec": entry.data.model_dump(mode="json"), "stage": "float32"}
        st.add_output(save_model(trained.module, st.path("model.pt"), card))
        history = trained.card["history"]
        st.metrics.update(from_cache=trained.cached, epochs_run=history["epochs_run"],
                          best_val_score=history["best_val_score"])
        return {}

    if entry.file is not None:
        trained = state.stage("train", {"file": str(entry.file)}, [entry.file], lambda st: _bring(state, st))
    else:
        trained = state.stage("train", params, [], train)
    state.model_path = trained.files["model.pt"]
    state.model, state.card = load_model(state.model_path)

    def evaluate(st: StageWindow) -> dict[str, Any]:
        row = score_model(state, st, state.model, "float32")
        return {"rows": [row], "ladder": [ladder_row("float32", row["size_bytes"], weight_count(state.model),
                                                     row["score"])]}

    scored = state.stage("evaluate", {"split": "test", "stage": "float32"}, [state.model_path], evaluate)
    state.float_score = scored["rows"][0]["score"]
    state.advance(state.model, "float32", state.model_path)
