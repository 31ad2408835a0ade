"""The deploy section of a recipe: a bundle for a board, optionally a signed tarball copied over scp."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DeployConfig(BaseModel):
    """A deploy bundle of the compressed model for a board; optionally a tarball copied over scp."""

    model_config = ConfigDict(extra="forbid")
    tar: bool = False
    to: str | None = Field(None, description="user@host:/path to copy the bundle to with scp")
    precision: Literal["fp32", "fp16", "int8", "int4"] = "fp16"
    sign_key: Path | None = Field(None, description="a key file (edgewise bundle keygen): the manifest carries its "
                                  "HMAC-SHA256, checked by bundle verify --key and run.py --key")
