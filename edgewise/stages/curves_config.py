"""The curves section of a recipe: score against one-shot pruning rate for several criteria."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from edgewise.compress.criteria import CRITERIA
from edgewise.stages.prune_config import RepairName
from edgewise.zoo.training_config import FinetuneConfig


class CurvesConfig(BaseModel):
    """Score against one-shot pruning rate for several criteria (the area under each curve compares them)."""

    model_config = ConfigDict(extra="forbid")
    criteria: Annotated[list[str], AfterValidator(CRITERIA.known)] = Field(
        default_factory=lambda: ["lrp", "gradient", "taylor", "l1", "hrank", "apoz", "random"], min_length=1)
    rates: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
                               min_length=2)
    samples_per_class: int | None = Field(10, ge=1)
    finetune: FinetuneConfig | None = None
    repair: RepairName = Field("all", description="after each cut, as in prune: all, reconstruct, batchnorm or none")

    @field_validator("rates")
    @classmethod
    def _rates_in_range(cls, values: list[float]) -> list[float]:
        bad = [v for v in values if not 0.0 <= v < 1.0]
        if bad:
            raise ValueError(f"pruning rates must be in [0, 1); got {bad}")
        return sorted(set(values))
