"""The criterion plug-in interface: score every output channel of the named conv/linear layers."""

from __future__ import annotations

import abc
from typing import ClassVar

import torch
from torch import nn

from edgewise.compress.reference import ReferenceSamples


class Criterion(abc.ABC):
    """Scores channels; higher means more important. One subclass per criterion, registered by `name`.

    `normalization` is the per-layer normalisation the criterion's paper uses before ranking
    (none, sum or l2); a ranking may override it. `needs_data` says whether reference samples are
    read. `class_specific` says whether `ReferenceSamples.classes` changes the scores.
    """

    name: ClassVar[str]
    normalization: ClassVar[str] = "none"
    needs_data: ClassVar[bool] = True
    class_specific: ClassVar[bool] = True

    @abc.abstractmethod
    def scores(self, model: nn.Module, names: set[str], ref: ReferenceSamples) -> dict[str, torch.Tensor]:
        """One non-negative score per output channel for each layer in `names` (a 1-D tensor per name)."""

    def describe(self) -> str:
        """A short description for reports: the name and any options that change the scores."""
        return self.name
