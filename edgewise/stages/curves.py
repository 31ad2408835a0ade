"""The curves stage: score against pruning rate for several criteria, with the area under each curve."""

from __future__ import annotations

from typing import Any

from edgewise.base.atomic import write_json
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.repair import named_repair
from edgewise.compress.study import rate_curves
from edgewise.core.ledger import TORCH
from edgewise.core.rundir import StageWindow
from edgewise.report.plots import rate_curves as plot_rate_curves
from edgewise.report.section import Section
from edgewise.stages.curves_config import CurvesConfig
from edgewise.stages.prune import finetuner
from edgewise.stages.state import ModelState
from edgewise.zoo.training import evaluate


def curves_stage(state: ModelState, config: CurvesConfig) -> None:
    """Prune one-shot at every rate with every criterion, score on the test split, and add the plot and table."""
    data, name = state.data, state.entry.name

    def curves(st: StageWindow) -> dict[str, Any]:
        ref = ReferenceSamples.from_split(data.val.x, data.val.y, data.task, config.samples_per_class)
        study = rate_curves(state.compute_module(state.base), ref, config.criteria, config.rates,
                            lambda m: evaluate(m, data.test, data.task)["score"],
                            finetune=finetuner(state, config.finetune), repair=named_repair(config.repair))
        st.add_output(write_json(st.path("curves.json"), study))
        st.metrics.update({f"auc_{c}": v["auc"] for c, v in study["curves"].items()})
        score_name = "mIoU" if data.task == "segmentation" else "accuracy"
        tuned = f", fine-tuned {config.finetune.epochs} epochs" if config.finetune else ", no fine-tuning"
        tuned += ", no repair" if config.repair == "none" else f", repair: {config.repair}"
        rows = [(c, f"{v['auc']:.3f}", *(f"{p['score']:.3f}" for p in v["points"]))
                for c, v in sorted(study["curves"].items(), key=lambda kv: -kv[1]["auc"])]
        return {"sections": [Section(
            f"{score_name.capitalize()} against pruning rate: {name}",
            ("criterion", "AUC", *(f"{r:.0%}" for r in config.rates)), rows,
            f"One-shot global pruning from {len(ref.x)} reference samples{tuned}; test-split {score_name}; "
            "AUC is the area under the curve over the rate span (1.0 = no loss).",
            plot_rate_curves(study["curves"], score_name, f"{name}: one-shot pruning{tuned}"),
        ).to_json()]}

    state.stage("curves", config.model_dump(mode="json"), [state.base.files[TORCH]], curves)
