"""What a recipe model carries through the stages: its data, its ledger of versions, report sections, bench records."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgewise.base.device import on_device
from edgewise.board.errors import UserError
from edgewise.core.console import console, stage_display
from edgewise.core.ledger import TORCH, Ledger, Version
from edgewise.core.modelio import load_model
from edgewise.core.rundir import RunDirectory, StageOutcome, StageWindow
from edgewise.report.section import Section
from edgewise.zoo.dataset import Dataset


@dataclass
class ModelState:
    """One recipe model as it moves through the stages.

    Torch work (training, scoring, pruning, quantization) runs on `device`; the versions are kept on
    the CPU, as files are. Stages return JSON outcomes; `stage()` applies them whether the stage ran now or was reused:
    `versions` (new versions, or fields and files added to existing ones, files named as the
    stage's outputs), `sections` (report sections) and `bench` (benchmark records).
    """

    run: RunDirectory
    entry: Any  # the recipe's ModelEntry, built from the stage table above the stages
    data: Dataset
    ledger: Ledger = field(default_factory=Ledger)
    sections: list[Section] = field(default_factory=list)
    bench: list[dict[str, Any]] = field(default_factory=list)
    running: str = ""  # the stage table's stage now running: what `--force` calls the stages it records
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _loaded: dict[Path, tuple[nn.Module, dict[str, Any]]] = field(default_factory=dict, repr=False)

    def stage(self, stage: str, params: dict[str, Any], inputs: Sequence[Path | None],
              compute: Callable[[StageWindow], dict[str, Any]]) -> StageOutcome:
        """Run (or reuse) one recorded stage of this model and take in the versions, sections and records it returns.

        The key of every stage also covers the model's data spec, seed and architecture, which
        all stages read.
        """
        context = {"data": self.entry.data.model_dump(mode="json"), "seed": self.entry.seed,
                   "arch": self.entry.arch, "arch_args": self.entry.arch_args}
        start = time.perf_counter()
        with stage_display(self.entry.name, stage):
            out = self.run.cached(stage, self.entry.name, params, [p for p in inputs if p is not None], compute,
                                  context, family=self.running)
        for values in out.values.get("versions", []):
            self.ledger.merge(values, lambda name: out.files[name])
        self.sections += [Section.from_json(s) for s in out.values.get("sections", [])]
        self.bench += out.values.get("bench", [])
        took = f"done in {time.perf_counter() - start:.1f} s"
        how = "reused (inputs and parameters unchanged)" if out.reused else took
        console.print(f"  {self.entry.name} {stage}: {how}", markup=False)
        return out

    @property
    def base(self) -> Version:
        """The version everything is compared with: the float32 model, or the ONNX file as given."""
        return next(iter(self.ledger))

    def module(self, version: Version) -> nn.Module:
        """The torch model of `version`, loaded once (treat it as read-only: compression works on copies)."""
        return self._load(version)[0]

    def compute_module(self, version: Version) -> nn.Module:
        """The torch model of `version` on the run's compute device (a copy there when that is not the CPU): what
        training, scoring and compression run on; files are written from it on the CPU (modelio.save_model)."""
        return on_device(self.module(version), self.device)

    @property
    def card(self) -> dict[str, Any]:
        """The float model's card (architecture, input shape, task, classes): what every saved version carries on."""
        return self._load(self.base)[1]

    def _load(self, version: Version) -> tuple[nn.Module, dict[str, Any]]:
        path = version.files[TORCH]
        if path not in self._loaded:
            self._loaded[path] = load_model(path, trusted=True)  # written by Edgewise into its run directory
        return self._loaded[path]

    def class_indices(self, classes: list[str | int]) -> tuple[int, ...]:
        """Resolve class names or indices against the data's classes; unknown ones are a user error."""
        out = []
        for c in classes:
            if isinstance(c, int) and 0 <= c < self.data.num_classes:
                out.append(c)
            elif isinstance(c, str) and c in self.data.class_names:
                out.append(self.data.class_names.index(c))
            else:
                raise UserError(f"model {self.entry.name}: unknown class {c!r}",
                                f"use one of {', '.join(self.data.class_names)} (or their indices)")
        return tuple(out)
