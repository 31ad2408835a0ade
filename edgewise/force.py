"""`--force`: which stages of a resumed run must run again, even where their earlier results could be reused."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edgewise.board.errors import UserError
from edgewise.stages.table import STAGE_NAMES


def force_policy(specs: Sequence[str], models: Sequence[str]) -> Callable[[str, str | None], bool]:
    """Parse `--force` values (`all`, `STAGE` or `MODEL/STAGE`) into a predicate over (stage, model).

    Stages are the stage table's, in run order; forcing one forces every later stage of the same
    model (or of every model, without a MODEL/ prefix), because they read its outputs. Unknown
    stage or model names are a user error.
    """
    starts: dict[str | None, int] = {}
    for spec in specs:
        model, _, stage = spec.rpartition("/")
        if spec == "all":
            model, stage = "", STAGE_NAMES[0]
        if stage not in STAGE_NAMES:
            raise UserError(f"--force {spec}: unknown stage {stage!r}",
                            f"use all, one of {', '.join(STAGE_NAMES)}, or MODEL/STAGE")
        if model and model not in models:
            raise UserError(f"--force {spec}: the recipe has no model {model!r}",
                            f"use one of {', '.join(models)}")
        index = STAGE_NAMES.index(stage)
        key = model or None
        starts[key] = min(starts.get(key, index), index)

    def forced(stage: str, model: str | None) -> bool:
        if model is None:
            return False  # run-level stages (the results and report) are written on every run anyway
        start = min(starts.get(None, len(STAGE_NAMES)), starts.get(model, len(STAGE_NAMES)))
        return STAGE_NAMES.index(stage) >= start

    return forced
