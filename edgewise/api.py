"""The public API's own function: run a recipe given as a path, a dict or a Recipe, the way `edgewise run` does."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgewise.recipe import Recipe, load_recipe, parse_recipe
from edgewise.sweep import run_sweep


def run(recipe: str | os.PathLike[str] | dict[str, Any] | Recipe | None = None, out: str | Path = "runs",
        name: str | None = None, force: Sequence[str] = (), jobs: int = 1, ray: str | None = None) -> Any:
    """Run a recipe into `out/<name>` and return its RunResult (a SweepResult when the recipe has a sweep).

    `recipe` is a YAML file's path (its relative paths are read from the file's folder), a dict
    with a recipe's fields, a Recipe, or None for the embedded default. Stages whose inputs and
    parameters are unchanged since an earlier run into the same directory are reused; `force`
    (`all`, `STAGE` or `MODEL/STAGE`) reruns from a stage on. A sweep's configurations run in
    `jobs` local processes, or as Ray tasks on the cluster at `ray`.
    """
    from edgewise.pipeline import run_recipe

    if isinstance(recipe, Recipe):
        parsed = recipe
    elif isinstance(recipe, dict):
        parsed = parse_recipe(recipe, "recipe dict")
    else:
        parsed = load_recipe(recipe)
    if parsed.sweep:
        return run_sweep(parsed, out=out, name=name, jobs=jobs, ray_address=ray, force=force)
    return run_recipe(parsed, out=out, name=name, force=force)
