"""The prune section of a recipe: criterion, rate, schedule, ranking, reference samples, repair and fine-tuning."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from edgewise import compress
from edgewise.board.errors import UserError
from edgewise.compress.composites import AUTO, composite_rules
from edgewise.compress.criteria import CRITERIA
from edgewise.compress.schedules import SCHEDULES, iterative_rates
from edgewise.zoo.training_config import FinetuneConfig

RepairName = Literal["all", "reconstruct", "batchnorm", "none"]
"""What repair does after a cut (compress.repair.named_repair): both parts, one, or none."""


class PruneConfig(BaseModel):
    """Structured pruning: criterion, rate, schedule, ranking and the reference samples it reads."""

    model_config = ConfigDict(extra="forbid")
    criterion: Annotated[str, AfterValidator(CRITERIA.known)] = "lrp"
    rate: float = Field(0.5, allow_inf_nan=False, ge=0.0, lt=1.0, description="the share of `unit` to remove")
    unit: Literal["channels", "macs", "params", "latency"] = Field(
        "channels", description="what rate counts: the prunable channels, or the model's multiply-accumulates or "
        "parameters (the channel rate of the ranking that removes that share, see compress.budget), or its latency "
        "measured in ONNX Runtime on this CPU at batch 1 (timed trial cuts)")
    latency_ms: float | None = Field(None, allow_inf_nan=False, gt=0.0, description="with unit latency, a goal in "
                                     "milliseconds instead of rate: the rate is what it takes from the unpruned "
                                     "model's measured latency")
    schedule: Annotated[str, AfterValidator(SCHEDULES.known)] = Field(
        "oneshot", description="a registered schedule (edgewise.compress.schedules.SCHEDULES): oneshot, iterative "
        "or adaptive")
    scope: Literal["global", "layer"] = "global"
    normalization: Literal["none", "sum", "l2"] | None = None
    min_channels: int = Field(1, ge=1)
    round_to: int | None = Field(8, ge=1, description="keep each cut group's channel count a multiple of this: "
                                 "odd widths run slower than the unpruned network in ONNX Runtime's blocked "
                                 "convolutions (1 or null: any width)")
    max_layer_rate: float = Field(0.9, allow_inf_nan=False, gt=0.0, le=1.0, description="the largest share of one "
                                  "layer's channels that may go (1.0: no limit; a layer cut to one channel can silence "
                                  "the network)")
    ignore: list[str] = Field(default_factory=list)
    samples_per_class: int | None = Field(10, ge=1, description="reference samples per class (x10 scenes for "
                                          "segmentation); null: the whole validation split")
    step: float = Field(0.05, allow_inf_nan=False, gt=0.0, lt=1.0)
    sf: float = Field(0.5, allow_inf_nan=False, gt=0.0, lt=1.0)
    output: Literal["onehot", "logit", "contrast"] = Field("onehot", description="seed at the output for LRP, "
                                                           "gradient and Taylor scores")
    options: dict[str, Any] = Field(default_factory=dict, description="criterion options, e.g. LRP rules")
    composite: str | None = Field(None, description="lrp: a named rule composite (compress.composites.COMPOSITES; "
                                  "options' rules override it per layer kind), or auto: the one whose trial cut, "
                                  "repaired, keeps the outputs closest to the unpruned network's. Unset: auto for an "
                                  "LRP cut over all classes without rules given (see chosen_composite)")
    finetune: FinetuneConfig | None = None
    repair: RepairName = Field(
        "all", description="after every cut: reconstruct (refit the layers that read pruned channels to the unpruned "
        "network's outputs), batchnorm (re-estimate its statistics), all (both), each kept where it lowers the "
        "held-out output error; or none")
    calibration_samples: int = Field(256, ge=2, description="training-split inputs (a random draw) that repair reads")
    tune_steps: int = Field(0, ge=0, le=100_000, description="after every cut: this many optimiser steps of "
                            "fine-tuning, distilled from the unpruned model or on labels (tune_targets)")
    tune_lr: float = Field(1e-4, allow_inf_nan=False, gt=0, le=1.0)
    tune_targets: Literal["auto", "distill", "labels"] = Field(
        "auto", description="what tuning pulls towards: distill (the unpruned model's outputs, no labels read), "
        "labels, or auto: distill where the data's labels are a source model's own outputs")

    @model_validator(mode="after")
    def _known_composite(self) -> PruneConfig:
        if self.composite is None:
            return self
        if self.criterion != "lrp":
            raise ValueError(f"composite {self.composite} names LRP rules, but the criterion is {self.criterion}")
        if self.composite == AUTO and self.options.get("rules"):
            raise ValueError("composite auto chooses every rule: give it, or rules, not both")
        if self.composite != AUTO:
            try:
                composite_rules(self.composite)
            except UserError as exc:
                raise ValueError(f"{exc.problem}: {exc.fix}") from None
        return self

    def chosen_composite(self, class_specific: bool, calibration: int) -> str | None:
        """The composite a cut uses: the one given; unset, auto for LRP scores over all classes without rules given
        (the rules that score channels best differ by network: measured, epsilon-plus-flat lost to auto's choice on
        PESTO, PP-OCR's classifier and detector), else None (the criterion's own rules). An expert's cut is scored on
        its classes, while auto's trial compares whole outputs, so it keeps the criterion's rules; so does a cut with
        fewer than 4 `calibration` inputs, too few to choose by."""
        if self.composite is not None or self.criterion != "lrp" or self.options.get("rules") or class_specific \
                or calibration < 4:
            return self.composite
        return AUTO

    def criterion_options(self) -> dict[str, Any]:
        """The criterion's options with a named composite's rules under the rules given per kind (auto is chosen
        when pruning runs, see stages.prune.prune_as_configured)."""
        if self.composite in (None, AUTO):
            return dict(self.options)
        return {**self.options, "rules": {**composite_rules(self.composite), **self.options.get("rules", {})}}

    @model_validator(mode="after")
    def _goal_in_latency(self) -> PruneConfig:
        if self.latency_ms is not None and self.unit != "latency":
            raise ValueError(f"latency_ms is a latency goal, but the unit is {self.unit}: give unit latency")
        return self

    @model_validator(mode="after")
    def _one_fine_tuning(self) -> PruneConfig:
        if self.tune_steps and self.finetune is not None:
            raise ValueError("give finetune (epochs on the labels) or tune_steps (steps, distilled where there are no "
                             "labels), not both")
        return self

    def repair_settings(self) -> Any:
        """The compress.repair.Repair these settings describe (None: off)."""
        from edgewise.compress.repair import named_repair

        return named_repair(self.repair)

    @model_validator(mode="after")
    def _steps_that_end(self) -> PruneConfig:
        if self.schedule == "iterative":
            try:
                iterative_rates(self.rate, self.step)
            except UserError as exc:
                raise ValueError(f"{exc.problem}; {exc.fix}") from None
        return self

    def ranking(self) -> Any:
        """The compress.Ranking these settings describe."""
        return compress.Ranking(self.scope, self.normalization, self.min_channels, self.round_to, self.max_layer_rate)
