"""The emulate section of a recipe: the FantastIC4 integer kernel and its emulated accelerators."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgewise.base.registry import registered
from edgewise.targets import target_names


class EmulateConfig(BaseModel):
    """The FantastIC4 integer kernel on the quantized MLP, and its emulated costs on accelerator targets."""

    model_config = ConfigDict(extra="forbid")
    targets: list[str] = Field(default_factory=lambda: ["fantastic4-fpga", "fantastic4-asic"], min_length=1,
                               description="emulated accelerators (targets of kind emulated)")
    activation_bits: int = Field(8, ge=2, le=16)
    acc_bits: int = Field(32, ge=8, le=64)
    calibrator: Literal["max", "percentile", "entropy"] = Field("max", description="how activation ranges are "
                                                                "calibrated on the training split")
    round_float_weights: bool = Field(False, description="a model brought as ONNX with float weights: round them "
                                      "to the 4-bit grid (per layer, no retraining) to emulate it")

    @field_validator("targets")
    @classmethod
    def _emulated_targets(cls, values: list[str]) -> list[str]:

        return registered(values, target_names(kind="emulated"), "emulated accelerators")
