"""Saving and loading whole models with their card, so pruned models reload with their smaller shapes."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgewise.base.atomic import atomic_path
from edgewise.base.device import on_device
from edgewise.base.errors import UserError

FORMAT = "edgewise-model/1"


def save_model(model: nn.Module, path: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Write `model` (the whole module, so its shapes travel with it) and its `card` atomically to `path`.

    The card is plain JSON-able metadata: architecture, input shape, task, class names, how it
    was made. The file is a torch pickle: load only files you trust. A model on a GPU is written
    from a CPU copy, so the file loads on machines without one.
    """
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "card": card, "module": on_device(model, torch.device("cpu"))}, tmp)
    return Path(path)


def load_model(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model saved by `save_model`, or a plain `torch.save(module)` file; return (module, card)."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"model file {file} does not exist",
                        "give the path of a .pt file saved by Edgewise or torch.save")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=False)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, AttributeError,
            ModuleNotFoundError) as exc:
        raise UserError(f"cannot load model file {file}: {exc}",
                        "the file is corrupt or needs code that is not importable; save it again") from exc
    if isinstance(obj, nn.Module):
        return obj.eval(), {}
    if isinstance(obj, dict) and obj.get("format") == FORMAT and isinstance(obj.get("module"), nn.Module):
        return obj["module"].eval(), dict(obj.get("card", {}))
    if isinstance(obj, dict):
        raise UserError(f"{file} holds a state dict or other dict, not a model",
                        "save the whole module (torch.save(model, path)) so its architecture comes along")
    raise UserError(f"{file} holds a {type(obj).__name__}, not a model", "save an nn.Module with torch.save")
