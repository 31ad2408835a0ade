"""Recipes: YAML that says which models to build and which stages to run, validated by pydantic."""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from edgewise.base.device import check_device_choice
from edgewise.base.paths import MAX_NAME, NAME_PATTERN, regular_file
from edgewise.base.yamltext import load_yaml
from edgewise.board.errors import RecipeError, UserError
from edgewise.stages.table import STAGES, check_entry
from edgewise.zoo.architectures import ARCHITECTURES
from edgewise.zoo.data import DataSpec
from edgewise.zoo.reference import REFERENCES


class _ModelSource(BaseModel):
    """One model of a recipe: a zoo reference (`zoo: digits-mlp`), an architecture to train, a torch model file
    (`file:`) or an ONNX file (`onnx:`), with the data it is scored on; the stages' sections are added to it from
    the stage table (ModelEntry)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN, max_length=MAX_NAME)
    arch: str | None = None
    file: Path | None = Field(None, description="a trained torch model (.pt, the whole module) instead of training")
    trusted: bool = Field(False, description="file: unpickle it even when it names code of your own (that code runs "
                          "while it loads): only for files you trust")
    code: str | None = Field(None, description="file: the .py file or package that defines the model's classes (a "
                             "torch.save from a training script); that code alone is allowed")
    score: str | None = Field(None, description="data without labels: how agreement with the source model is scored "
                              "(classification, segmentation, sequence, embedding, boxes, regression; default: as "
                              "its outputs say)")
    weights: Path | None = Field(None, description="with arch: a state_dict (.pt) to load into it instead of "
                                 "training (loads without running any code of the file)")
    onnx: Path | None = Field(None, description="an ONNX model: benchmarked and emulated as it is, or converted to "
                              "torch (onnx2torch) when prune, fold, quantize or encode is on")
    arch_args: dict[str, Any] = Field(default_factory=dict)
    data: DataSpec
    seed: int = Field(0, ge=0, le=2**32 - 1, description="numpy's and torch's generators take 32-bit seeds")
    expert_unions: list[list[str]] = Field(default_factory=list, description="experts to combine (union of channels)")

    @model_validator(mode="after")
    def _stages_fit(self) -> _ModelSource:
        given = [k for k in ("arch", "file", "onnx") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a model needs exactly one of arch (train it), file (a torch .pt) or onnx (an ONNX "
                             f"file); got {', '.join(given) or 'none'}")
        check_entry(self)
        if (self.trusted or self.code) and self.file is None:
            raise ValueError("trusted and code apply to a model file (file:); other sources are never unpickled as a "
                             "whole")
        if self.weights is not None and self.arch is None:
            raise ValueError("weights (a state_dict) need the architecture they fit: give arch too")
        if self.emulate is not None and self.quantize is not None and self.quantize.bits > 4:
            raise ValueError(f"emulate runs FantastIC4's 4-bit weights, and quantize.bits is {self.quantize.bits}; "
                             "quantize to 4 bits or fewer, or remove emulate")
        return self

    @model_validator(mode="after")
    def _unions_name_experts(self) -> _ModelSource:
        names = [e.name for e in self.experts]
        if len(set(names)) != len(names):
            raise ValueError(f"expert names must be unique; got {names}")
        for group in self.expert_unions:
            unknown = [n for n in group if n not in names]
            if unknown or len(group) < 2:
                raise ValueError(f"an expert union names at least two experts of this model; got {group}")
        return self

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
    def _known_arch(cls, value: str | None) -> str | None:
        if value is not None and value not in ARCHITECTURES and not value.startswith("torchvision:") and \
                not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError(f"unknown architecture {value!r}; expected one of {', '.join(ARCHITECTURES)}, "
                             "torchvision:<name> or an importable class (my_pkg.models:Net)")
        return value


ModelEntry = create_model("ModelEntry", __base__=_ModelSource, __doc__=_ModelSource.__doc__,
                          **{stage.section: stage.field for stage in STAGES if stage.field is not None})
"""A recipe's model: its source and data (_ModelSource) and each stage's section, as the stage table declares it."""


class Recipe(BaseModel):
    """A whole run: its name and the models; each model is trained (or loaded), evaluated, then compressed as asked."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("run", pattern=NAME_PATTERN, max_length=MAX_NAME)
    models: list[ModelEntry] = Field(min_length=1)
    report: bool = True
    device: str = Field("auto", description=(
        "where training, scoring, fine-tuning, QAT and experts compute: auto (the GPU when torch sees one), cpu, "
        "cuda or cuda:N; export, emulation and benchmarks are unaffected"))
    sweep: dict[str, list[Any]] = Field(default_factory=dict, description=(
        "axes of a sweep: a model setting's dotted path (prune.criterion, quantize.lambda, quantize.bits, ...) "
        "-> the values to try; every combination runs as its own run, applied to each model with that section"))

    @field_validator("device")
    @classmethod
    def _device_choice(cls, value: str) -> str:
        return check_device_choice(value)

    @field_validator("sweep")
    @classmethod
    def _sweep_axes(cls, sweep: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in sweep.items():
            if not values:
                raise ValueError(f"sweep axis {path!r} has no values; give a list of at least one")
            if path.split(".")[0] not in ModelEntry.model_fields or "." not in path:
                raise ValueError(f"sweep axis {path!r} is not a model setting's dotted path such as prune.rate")
        return sweep

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelEntry]) -> list[ModelEntry]:
        names = [m.name for m in models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        return models

    @model_validator(mode="after")
    def _sweep_configurations_valid(self) -> Recipe:
        self.configurations()
        return self

    def configurations(self) -> list[SweepConfiguration]:
        """Every combination of the sweep's axes as a recipe of its own (one, the recipe itself, without a sweep).

        An axis `section.field` is set in each model that has `section`; an axis no model can take,
        or a value its field refuses, is an error naming the configuration.
        """
        if not self.sweep:
            return [SweepConfiguration(self.name, {}, self)]
        base = self.model_dump(mode="json", by_alias=True, exclude={"sweep"})
        for path in self.sweep:
            if not any(model.get(path.split(".")[0]) is not None for model in base["models"]):
                raise ValueError(f"sweep axis {path!r}: no model has a {path.split('.')[0]} section to set it in")
        out = []
        for i, values in enumerate(itertools.product(*self.sweep.values()), start=1):
            overrides = dict(zip(self.sweep, values, strict=True))
            name = f"{i:02d}_" + "_".join(f"{p.split('.')[-1]}-{v}" for p, v in overrides.items())
            body = json.loads(json.dumps(base))
            body["name"] = re.sub(r"[^A-Za-z0-9_.-]", "-", name)
            for model in body["models"]:
                for path, value in overrides.items():
                    _set(model, path.split("."), value)
            try:
                recipe = Recipe.model_validate(body)
            except ValidationError as exc:
                raise ValueError(f"sweep configuration {overrides}: {_describe(exc.errors()[0])}") from None
            out.append(SweepConfiguration(recipe.name, overrides, recipe))
        return out


@dataclass(frozen=True)
class SweepConfiguration:
    """One point of a sweep: its run name, the axis values it sets, and the complete recipe it runs."""

    name: str
    overrides: dict[str, Any]
    recipe: Recipe


def _set(model: dict[str, Any], path: list[str], value: Any) -> None:
    """Set the dotted `path` in one model of the recipe (nothing when the model lacks the section); a path through
    a setting that is no section (a str, a bool) is a ValueError naming it."""
    section = model.get(path[0])
    if section is None:
        return  # this model does not run the stage the axis configures
    for depth, key in enumerate(path[1:], start=1):
        if not isinstance(section, dict):
            raise ValueError(f"sweep axis {'.'.join(path)!r}: {'.'.join(path[:depth])} is a "
                             f"{type(section).__name__} setting, not a section with fields")
        if depth == len(path) - 1:
            section[key] = value
        else:
            if section.get(key) is None:  # an optional section left out (train: null) is made for the axis
                section[key] = {}
            section = section[key]


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error["loc"]) or "(top level)"
    given = error.get("input")
    if error["type"] == "extra_forbidden":
        return f"field '{loc}' is not a recipe field (given {given!r}); remove it or check its spelling"
    if error["type"] == "missing":
        return f"field '{loc}' is required but missing"
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:  # a check across the whole recipe: the input is the recipe itself
        return message
    if isinstance(given, dict):  # a check across a section: the message names the fields, the section is noise
        return f"field '{loc}': {message}"
    return f"field '{loc}': {message} (given {given!r})"


MAX_RECIPE_VALUES = 100_000
"""Values a recipe may hold once YAML aliases are expanded: an alias of an alias of ... (a "billion laughs") is a
few lines of YAML and 10^9 values for every check that walks it."""


def expanded_size(data: Any) -> int:
    """How many values `data` holds once every shared (aliased) list or mapping counts each time it is used; counted
    without expanding anything (each distinct object's size once)."""
    sizes: dict[int, int] = {}

    def size(value: Any) -> int:
        if not isinstance(value, dict | list):
            return 1
        key = id(value)
        if key not in sizes:
            sizes[key] = 0  # a cycle (an alias inside itself) counts once
            children = list(value.items()) if isinstance(value, dict) else value
            sizes[key] = 1 + sum(size(k) + size(v) for k, v in children) if isinstance(value, dict) else \
                1 + sum(size(v) for v in children)
        return sizes[key]

    return size(data)


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
        try:
            file = regular_file(path, "recipe", "give the path of a YAML recipe file (`edgewise recipe show > "
                                "my-recipe.yaml` writes the default, `edgewise examples` the examples)")
        except UserError as exc:
            raise RecipeError(exc.problem, exc.fix) from None
        try:
            text, source = file.read_text(encoding="utf-8"), str(file)
        except UnicodeDecodeError as exc:
            raise RecipeError(f"recipe {file} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start]:#04x})",
                              "save the recipe as UTF-8 (YAML)") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    expanded = expanded_size(data)
    if expanded > MAX_RECIPE_VALUES:
        raise RecipeError(f"{source}: its YAML aliases (*name) expand to {expanded:,} values, more than the "
                          f"{MAX_RECIPE_VALUES:,} a recipe may hold", "write the values out, or alias less deeply")
    if path is not None:
        _relative_to(data, Path(path).resolve().parent)
    return parse_recipe(data, source)


def _relative_to(data: Any, base: Path) -> None:
    """Make the file paths of a recipe file's models relative to the file itself, as a reader expects."""
    models = data.get("models") if isinstance(data, dict) else None
    for model in models if isinstance(models, list) else []:
        if not isinstance(model, dict):
            continue
        holders = [(model, "file"), (model, "onnx"), (model, "weights")]
        if isinstance(model.get("deploy"), dict):
            holders.append((model["deploy"], "sign_key"))
        if isinstance(model.get("data"), dict):
            holders.append((model["data"], "path"))
        bench = model.get("bench")
        if isinstance(bench, dict) and isinstance(bench.get("board_results"), dict):
            holders += [(bench["board_results"], k) for k in bench["board_results"]]
        for holder, key in holders:
            if isinstance(holder.get(key), str) and not Path(holder[key]).expanduser().is_absolute():
                holder[key] = str(base / holder[key])
