"""The export section of a recipe: ONNX export, its W4A8 variant and the TensorRT engine."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TensorRTConfig(BaseModel):
    """A TensorRT engine: built here when TensorRT and a CUDA device exist, else the trtexec command for the board."""

    model_config = ConfigDict(extra="forbid")
    precision: Literal["fp32", "fp16", "int8", "int4"] = "fp16"
    max_batch: int = Field(64, ge=1)
    workspace_mib: int = Field(1024, ge=16)
    required: bool = Field(False, description="fail the run when TensorRT is unavailable here")


class W4A8Config(BaseModel):
    """The quantized model with 8-bit activations too: ONNX Q/DQ for int8 kernels (edgewise.export.w4a8)."""

    model_config = ConfigDict(extra="forbid")
    calibrator: Literal["max", "percentile", "entropy", "mse"] = Field(
        "mse", description="how each activation tensor's range is calibrated (mse: the range whose rounding and "
        "clipping error is smallest)")
    samples: int = Field(256, ge=1, le=100_000, description="training samples the ranges are calibrated on")
    activations: Literal["uint8", "int8"] = Field("uint8", description="uint8: ONNX Runtime's x86 int8 kernels and "
                                                  "the FantastIC4 kernel's encoding; int8: symmetric, for TensorRT")
    keep_float: Literal["auto", "none"] | list[str] = Field(
        "auto", description="nodes whose activations stay float: auto (the sensitivity pass keeps those whose 8-bit "
        "activations add more than `tolerance` relative output error), none, or node names")
    tolerance: float = Field(0.05, gt=0, le=1, allow_inf_nan=False, description="the relative output error 8-bit "
                             "activations may add before auto keeps nodes float")


class ExportConfig(BaseModel):
    """ONNX export of the float and the compressed model, verified against torch after writing."""

    model_config = ConfigDict(extra="forbid")
    dynamic_batch: bool = True
    probe_samples: int = Field(8, ge=1)
    tensorrt: TensorRTConfig | None = None
    w4a8: W4A8Config | None = Field(None, description="also export the quantized model with 8-bit activations, as "
                                    "the version deployed and benchmarked")
    plain_variant: Literal["auto", "always", "never"] = Field(
        "auto", description="beside each 4-bit file, its variant for a plain ONNX Runtime session (4-bit weights "
                            "stored dequantized): auto and always write it for every file the kit's session rewrites "
                            "at load (edgewise export's auto times both sessions first), never leaves it out")
