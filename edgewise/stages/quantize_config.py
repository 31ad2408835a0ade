"""The quantize section of a recipe: method, bit width, the method's settings and quantization-aware training."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from edgewise.base.grid import check_block
from edgewise.board.errors import UserError
from edgewise.compress.quant import LAMBDA_LIMIT, QUANTIZERS, quantizer_settings
from edgewise.zoo.training_config import QATConfig

QUANTIZER_FIELDS = {"lam": "lambda", "per_channel": "per_channel", "block": "block", "rho": "rho", "p": "p",
                    "rounding": "rounding"}
"""The QuantizeConfig fields that are quantizer settings (constructor keyword -> recipe key)."""


class QuantizeConfig(BaseModel):
    """Weight quantization: method, bit width, entropy constraint (lambda) and optional training."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    method: Annotated[str, AfterValidator(QUANTIZERS.known)] = Field(
        "ecqx", description="a registered quantizer (edgewise.compress.quant.QUANTIZERS)")
    bits: int = Field(4, ge=2, le=8)
    lam: float | str = Field(0.05, alias="lambda", description="ECQ's entropy constraint (0 to 10), or auto: the "
                             "largest that keeps the outputs on the reference samples within 10% of lambda 0's error "
                             "(post-training only)")
    per_channel: bool = Field(False, description="one step per output channel (ECQ/ECQx: the levels and their "
                              "entropy stay the layer's)")
    block: int | None = Field(None, description="one step per block of this many weights along the input axis (16, "
                              "32, 64, 128 or 256; null: per layer, or per channel with per_channel)")
    rounding: Literal["auto", "nearest", "compensated", "learned"] = Field(
        "auto", description="how levels are found on the grid: compensated (GPTQ-style, over the layers' inputs on "
        "the reference samples; auto where samples are given) or nearest")
    rho: float = Field(2.0, allow_inf_nan=False, gt=0.0)
    p: float = Field(0.1, allow_inf_nan=False, ge=0.0, le=1.0)
    samples_per_class: int | None = Field(10, ge=1)
    ignore: list[str] = Field(default_factory=list)
    train: QATConfig | None = None

    @field_validator("lam")
    @classmethod
    def _lambda(cls, value: float | str) -> float | str:
        if value == "auto":
            return value
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"lambda must be a number from 0 to {LAMBDA_LIMIT:g}, or auto") from None
        if not 0.0 <= number <= LAMBDA_LIMIT:  # NaN fails this too
            raise ValueError(f"lambda must be a finite number from 0 to {LAMBDA_LIMIT:g}, or auto")
        return number

    @field_validator("block")
    @classmethod
    def _block_size(cls, value: int | None) -> int | None:

        try:
            check_block(value)
        except UserError as exc:
            raise ValueError(f"{exc.problem}; {exc.fix}") from None
        return value

    @model_validator(mode="after")
    def _settings_the_method_takes(self) -> QuantizeConfig:
        accepted = quantizer_settings(self.method)
        if self.block is not None and "block" not in accepted:
            blocked = [n for n in QUANTIZERS if "block" in quantizer_settings(n)]
            raise ValueError(f"quantizer {self.method} has no block-wise steps; block is for {', '.join(blocked)}")
        # a setting given for another method would be ignored: the run would not be the one asked for (one at its
        # default changes nothing, and configs travel as full dumps to sweep workers)
        ignored = sorted(QUANTIZER_FIELDS[k] for k in QUANTIZER_FIELDS
                         if k not in accepted and getattr(self, k) != type(self).model_fields[k].default)
        if ignored:
            raise ValueError(f"quantizer {self.method} takes no {', '.join(ignored)}; its settings are "
                             f"{', '.join(QUANTIZER_FIELDS.get(k, k) for k in accepted)}")
        return self

    def quantizer_settings(self) -> dict[str, Any]:
        """The settings of this config that its method's quantizer takes, by constructor keyword."""
        return {k: getattr(self, k) for k in quantizer_settings(self.method) if k in QUANTIZER_FIELDS}
