"""Recipes: YAML that says which models to build and which stages to run, validated by pydantic."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgewise.errors import RecipeError
from edgewise.zoo.data import DataSpec
from edgewise.zoo.models import ARCHITECTURES
from edgewise.zoo.reference import REFERENCES
from edgewise.zoo.training import TrainConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ModelEntry(BaseModel):
    """One model of a recipe: a zoo reference (`zoo: digits-mlp`) or an architecture with its data."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    arch: str
    arch_args: dict[str, Any] = Field(default_factory=dict)
    data: DataSpec
    train: TrainConfig = Field(default_factory=TrainConfig)
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _expand_zoo_reference(cls, value: Any) -> Any:
        if not isinstance(value, dict) or "zoo" not in value:
            return value
        ref_name = value["zoo"]
        if ref_name not in REFERENCES:
            raise ValueError(f"unknown zoo model {ref_name!r}; expected one of {', '.join(REFERENCES)}")
        ref = REFERENCES[ref_name]
        expanded = {"name": ref.name, "arch": ref.arch, "arch_args": ref.arch_args,
                    "data": ref.data.model_dump(), "train": ref.train.model_dump()}
        expanded.update({k: v for k, v in value.items() if k != "zoo"})
        return expanded

    @field_validator("data", mode="before")
    @classmethod
    def _data_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        if value not in ARCHITECTURES and not value.startswith("torchvision:"):
            raise ValueError(f"unknown architecture {value!r}; expected one of "
                             f"{', '.join(ARCHITECTURES)} or torchvision:<name>")
        return value


class Recipe(BaseModel):
    """A whole run: its name and the models; every model is trained (or loaded) and evaluated."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("run", pattern=NAME_PATTERN)
    models: list[ModelEntry] = Field(min_length=1)
    report: bool = True

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelEntry]) -> list[ModelEntry]:
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        return models


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "(top level)"
    given = error.get("input")
    if error["type"] == "extra_forbidden":
        return f"field '{loc}' is not a recipe field (given {given!r}); remove it or check its spelling"
    if error["type"] == "missing":
        return f"field '{loc}' is required but missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"field '{loc}': {message} (given {given!r})"


def parse_recipe(data: Any, source: str = "recipe") -> Recipe:
    """Validate a recipe given as a dict; a bad field raises RecipeError naming it, what was expected and given."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a YAML mapping, got {type(data).__name__}",
                          "start from `edgewise recipe show` or the examples/ folder")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(f"{source}: {_describe(exc.errors()[0])}") from None


def load_recipe(path: str | os.PathLike[str] | None = None) -> Recipe:
    """Read and validate the recipe at `path`; without a path, the embedded default recipe."""
    if path is None:
        text = resources.files("edgewise.recipes").joinpath("default.yaml").read_text(encoding="utf-8")
        source = "default recipe"
    else:
        file = Path(path)
        if not file.is_file():
            raise RecipeError(f"recipe {file} does not exist", "give the path of a YAML recipe file")
        text, source = file.read_text(encoding="utf-8"), str(file)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_recipe(data, source)
