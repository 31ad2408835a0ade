"""How a model is trained, fine-tuned or trained quantization-aware: one set of settings, three defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """How to train: Adam with the given rate, mini-batches, early stopping on the validation score."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(60, ge=0, le=10_000)
    lr: float = Field(1e-3, allow_inf_nan=False, gt=0, le=1.0)
    batch_size: int = Field(32, ge=1)
    weight_decay: float = Field(0.0, allow_inf_nan=False, ge=0)
    patience: int = Field(15, ge=1, description="epochs without a better validation score before stopping")


class FinetuneConfig(TrainConfig):
    """Fine-tuning after pruning (each step of an iterative schedule): the zoo's training loop, shorter, and without
    early stopping unless `patience` is given."""

    epochs: int = Field(5, ge=1, le=1000)
    lr: float = Field(1e-4, allow_inf_nan=False, gt=0, le=1.0)
    patience: int | None = Field(None, ge=1, description="epochs without a better validation score before "
                                 "stopping (null: the whole run)")

    def train_config(self) -> TrainConfig:
        """The equivalent zoo training settings."""
        return TrainConfig(**{**self.model_dump(), "patience": self.patience or self.epochs})


class QATConfig(TrainConfig):
    """Quantization-aware training: epochs of Adam on the full-precision copy, early stopping on validation."""

    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(64, ge=1)
    patience: int = Field(3, ge=1)
    relevance_every: int = Field(10, ge=1, description="ECQx: steps between relevance updates")
    activation_bits: int | None = Field(None, ge=2, le=16, description="train with every quantized layer's input "
                                        "fake-quantized to this many bits, as W4A8 runs it (8)")
    targets: Literal["auto", "distill", "labels"] = Field(
        "auto", description="what the loss pulls towards: distill (the float model's outputs, no labels read), labels "
                            "(the data's), or auto: distill where the data's labels are a source model's own outputs")
    temperature: float = Field(1.0, allow_inf_nan=False, gt=0, le=20, description="distillation: the temperature the "
                               "class distributions are compared at")
