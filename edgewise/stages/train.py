"""The train stage: load the model from the cache or train it, then evaluate the float32 model."""

from __future__ import annotations

from compress.size import ladder_row, weight_count
from edgewise.modelio import save_model
from edgewise.stages.state import ModelState, score_model
from edgewise.zoo.cache import trained_model


def train_stage(state: ModelState) -> None:
    """Obtain the trained float model (cache or training), save it in the run directory, and score it."""
    entry = state.entry
    params = {"arch": entry.arch, "arch_args": entry.arch_args, "data": entry.data.model_dump(mode="json"),
              "train": entry.train.model_dump(), "seed": entry.seed}
    with state.run.stage("train", entry.name, params=params) as st:
        trained = trained_model(entry.arch, state.data, entry.train, entry.seed, entry.arch_args,
                                label=f"train {entry.name}")
        st.add_input(trained.path)
        state.card = {**trained.card, "data_spec": entry.data.model_dump(mode="json"), "stage": "float32"}
        state.model = trained.module
        state.model_path = save_model(trained.module, st.path("model.pt"), state.card)
        st.add_output(state.model_path)
        history = trained.card["history"]
        st.metrics.update(from_cache=trained.cached, epochs_run=history["epochs_run"],
                          best_val_score=history["best_val_score"])
    with state.run.stage("evaluate", entry.name, params={"split": "test", "stage": "float32"}) as st:
        row = score_model(state, st, state.model, "float32")
    state.float_score = row["score"]
    state.rows.append(row)
    state.advance(state.model, "float32", state.model_path)
    state.ladder.append(ladder_row("float32", row["size_bytes"], weight_count(state.model), row["score"]))
