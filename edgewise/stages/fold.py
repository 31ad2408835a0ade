"""The fold stage: every BatchNorm merged into the layer before it, as the folded version of the working model."""

from __future__ import annotations

from typing import Any

import torch

from edgewise import compress
from edgewise.core.ledger import FOLDED, TORCH
from edgewise.core.modelio import save_model
from edgewise.core.rundir import StageWindow
from edgewise.stages.state import ModelState


def fold_stage(state: ModelState, enabled: bool) -> None:
    """Fold every BatchNorm of the working model into the layer before it; the outputs are checked to stay the same.

    The folded version computes what its parent computes, so it keeps the parent's name and is not
    scored again; the next compression stage (quantization) starts from it.
    """
    source = state.ledger.working()

    def fold(st: StageWindow) -> dict[str, Any]:
        example = state.data.val.x[:8]
        module = state.module(source)
        folded, names = compress.fold_batchnorm(module, example)
        with torch.no_grad():
            diff = float((folded(example) - module.eval()(example)).abs().max())
        st.metrics.update(folded=names, max_abs_diff=diff)
        st.add_output(save_model(folded, st.path("model.pt"), {**state.card, "stage": f"{source.label}, folded"}))
        return {"versions": [{"id": FOLDED, "kind": FOLDED, "label": source.label, "parent": source.id,
                              "files": {TORCH: "model.pt"}}]}

    state.stage("fold", {}, [source.files[TORCH]], fold)
