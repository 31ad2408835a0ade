"""The prune section of a recipe: criterion, rate, schedule, ranking, reference samples and fine-tuning."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from edgewise.base.errors import UserError
from edgewise.compress.criteria import CRITERIA
from edgewise.compress.schedules import SCHEDULES, iterative_rates
from edgewise.zoo.training_config import FinetuneConfig


class PruneConfig(BaseModel):
    """Structured pruning: criterion, rate, schedule, ranking and the reference samples it reads."""

    model_config = ConfigDict(extra="forbid")
    criterion: Annotated[str, AfterValidator(CRITERIA.known)] = "lrp"
    rate: float = Field(0.5, allow_inf_nan=False, ge=0.0, lt=1.0)
    schedule: Annotated[str, AfterValidator(SCHEDULES.known)] = Field(
        "oneshot", description="a registered schedule (edgewise.compress.schedules.SCHEDULES): oneshot, iterative "
        "or adaptive")
    scope: Literal["global", "layer"] = "global"
    normalization: Literal["none", "sum", "l2"] | None = None
    min_channels: int = Field(1, ge=1)
    round_to: int | None = Field(None, ge=1)
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
    finetune: FinetuneConfig | None = None

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
        from edgewise import compress
        return compress.Ranking(self.scope, self.normalization, self.min_channels, self.round_to, self.max_layer_rate)
