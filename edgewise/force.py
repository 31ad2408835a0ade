"""`--force`: which stages of a resumed run must run again, even where their earlier results could be reused."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from edgewise.errors import UserError

# the order stages run in for each model; forcing one forces everything after it (its outputs feed them)
STAGE_ORDER = ("train", "prune", "experts", "curves", "fold", "quantize", "encode", "emulate", "export", "deploy",
               "bench")
_FAMILY = {"evaluate": "train", "load": "train", "expert-table": "experts"}


def stage_family(stage: str) -> str:
    """The STAGE_ORDER entry a recorded stage belongs to (evaluate, load -> train; expert-x, union-x -> experts)."""
    if stage in _FAMILY:
        return _FAMILY[stage]
    if stage.startswith(("expert-", "union-")):
        return "experts"
    return stage


def force_policy(specs: Sequence[str], models: Sequence[str]) -> Callable[[str, str | None], bool]:
    """Parse `--force` values (`all`, `STAGE` or `MODEL/STAGE`) into a predicate over (stage, model).

    Forcing a stage forces every later stage of the same model (or of every model, without a
    MODEL/ prefix), because they read its outputs. Unknown stage or model names are a user error.
    """
    starts: dict[str | None, int] = {}
    for spec in specs:
        model, _, stage = spec.rpartition("/")
        if spec == "all":
            model, stage = "", STAGE_ORDER[0]
        if stage not in STAGE_ORDER:
            raise UserError(f"--force {spec}: unknown stage {stage!r}",
                            f"use all, one of {', '.join(STAGE_ORDER)}, or MODEL/STAGE")
        if model and model not in models:
            raise UserError(f"--force {spec}: the recipe has no model {model!r}",
                            f"use one of {', '.join(models)}")
        index = STAGE_ORDER.index(stage)
        key = model or None
        starts[key] = min(starts.get(key, index), index)

    def forced(stage: str, model: str | None) -> bool:
        if model is None:
            return False  # run-level stages (the report) are written on every run anyway
        start = min(starts.get(None, len(STAGE_ORDER)), starts.get(model, len(STAGE_ORDER)))
        return STAGE_ORDER.index(stage_family(stage)) >= start

    return forced
