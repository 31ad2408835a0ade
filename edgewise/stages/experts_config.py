"""The experts section of a recipe: class-specific experts, each a pruning whose scores see chosen classes."""

from __future__ import annotations

from pydantic import Field

from edgewise.base.paths import MAX_NAME, NAME_PATTERN
from edgewise.stages.prune_config import PruneConfig


class ExpertConfig(PruneConfig):
    """A class-specific expert: pruning whose scores only see the chosen classes (names or indices)."""

    name: str = Field(pattern=NAME_PATTERN, max_length=MAX_NAME)
    classes: list[str | int] = Field(min_length=1)
