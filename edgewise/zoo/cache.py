"""Train-once model cache: a model is keyed by architecture, data content, training and seed."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgewise.base.atomic import remove_temporary, stale_temporaries
from edgewise.base.paths import writable_folder
from edgewise.core.modelio import load_model, save_model
from edgewise.zoo.dataset import Dataset
from edgewise.zoo.models import build_model
from edgewise.zoo.training import evaluate, fit
from edgewise.zoo.training_config import TrainConfig

CACHE_FORMAT = 1


def cache_root() -> Path:
    """The cache directory: $EDGEWISE_CACHE, else $XDG_CACHE_HOME/edgewise, else ~/.cache/edgewise."""
    if os.environ.get("EDGEWISE_CACHE"):
        return Path(os.environ["EDGEWISE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgewise"


@dataclass
class TrainedModel:
    """A model from the cache (or freshly trained into it), its card and where it lives."""

    module: nn.Module
    card: dict[str, Any]
    path: Path
    cached: bool


def cache_key(arch: str, arch_args: dict[str, Any], data: Dataset, train: TrainConfig, seed: int,
              device: torch.device | None = None) -> str:
    """Hex key of a trained model: equal keys mean the same architecture, data, training, seed and kind of device
    (a GPU's kernels round differently from the CPU's, so its models are kept apart)."""
    fields = {"format": CACHE_FORMAT, "arch": arch, "arch_args": arch_args, "data": data.fingerprint(),
              "train": train.model_dump(), "seed": seed, "torch": torch.__version__.split("+")[0]}
    if device is not None and device.type != "cpu":  # CPU keys stay what they were before devices were chosen
        fields["device"] = device.type
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def trained_model(arch: str, data: Dataset, train: TrainConfig, seed: int = 0,
                  arch_args: dict[str, Any] | None = None, label: str | None = None,
                  device: torch.device | None = None) -> TrainedModel:
    """Return the model `arch` trained on `data` on `device` (the CPU by default): from the cache when present,
    else trained and cached; the model returned lives on `device`.

    Training on the CPU is deterministic for a seed; the card records the architecture, data, training
    history and test metrics, so later stages and reports need not recompute them.
    """
    args = dict(arch_args or {})
    device = device or torch.device("cpu")
    key = cache_key(arch, args, data, train, seed, device)
    path = cache_root() / "models" / f"{arch.replace(':', '-')}-{data.name.replace(':', '-')}-{key[:16]}" / "model.pt"
    if path.parent.is_dir():
        for stale in stale_temporaries(path.parent):  # a killed trainer's half-written model
            remove_temporary(stale)
    if path.is_file():
        module, card = load_model(path)
        return TrainedModel(module.to(device), card, path, cached=True)
    writable_folder(path.parent, "the model cache (EDGEWISE_CACHE)")  # before the training, not after it
    torch.manual_seed(seed)
    module = build_model(arch, data.input_shape, data.num_classes, **args).to(device)
    history = fit(module, data, train, seed=seed, label=label or f"train {arch}")
    card = {
        "arch": arch, "arch_args": args, "input_shape": list(data.input_shape), "num_classes": data.num_classes,
        "task": data.task, "class_names": list(data.class_names), "data": data.name,
        "data_fingerprint": data.fingerprint(), "train": train.model_dump(), "seed": seed, "cache_key": key,
        "device": str(device), "history": history,
        "test_metrics": evaluate(module, data.test, data.task, data.class_names),
    }
    save_model(module, path, card)
    return TrainedModel(module, card, path, cached=False)
