"""The bench section of a recipe: targets, iterations, windows, extra inputs and boards' own results."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgewise.base.registry import registered
from edgewise.bench.inputs import parse_request
from edgewise.board.errors import UserError
from edgewise.targets import target_names


class BenchStageConfig(BaseModel):
    """Latency, memory and energy of every exported model on each target (measured, emulated or estimated)."""

    model_config = ConfigDict(extra="forbid")
    targets: list[str] = Field(default_factory=lambda: ["x86-host"], min_length=1)
    iterations: int = Field(100, ge=1, le=10_000_000)
    duration_s: float = Field(1.0, ge=0, le=3600, allow_inf_nan=False)
    threads: int | None = Field(None, ge=1, le=1024)
    energy_window_s: float = Field(2.0, gt=0, le=3600, allow_inf_nan=False)
    inputs: list[str] = Field(default_factory=list, description="the model's inputs beyond the data's sample, as "
                              "`edgewise bench --input` takes them: NAME:SHAPE[:DTYPE][=VALUE]")
    precision: Literal["fp32", "fp16", "int8"] | None = Field(None, description="boards: the TensorRT engine "
                                                               "precision the estimate assumes (default fp16)")
    board_results: dict[str, Path] = Field(default_factory=dict, description="target -> result.json from the "
                                           "bundle's run.py on that board: replaces the estimate")

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, values: list[str]) -> list[str]:

        return registered(values, target_names(), "targets")

    @field_validator("inputs")
    @classmethod
    def _input_forms(cls, values: list[str]) -> list[str]:

        for value in values:
            try:
                parse_request(value)
            except UserError as exc:
                raise ValueError(exc.problem) from None
        return values
