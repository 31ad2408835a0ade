"""Recipes: YAML that says which models to build and which stages to run, validated by pydantic."""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgewise.base.device import check_device_choice
from edgewise.base.errors import RecipeError, UserError
from edgewise.base.paths import regular_file
from edgewise.base.yamltext import load_yaml
from edgewise.stages.table import check_entry
from edgewise.zoo.architectures import ARCHITECTURES
from edgewise.zoo.data import DataSpec
from edgewise.zoo.reference import REFERENCES
from edgewise.zoo.training_config import FinetuneConfig, QATConfig, TrainConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
MAX_NAME = 100  # a run directory's name: well inside every file system's 255-byte limit, with room for suffixes


def run_directory(out: str | os.PathLike[str], name: str) -> Path:
    """`out/name`, the run directory, when `name` is one plain directory name (letters, digits, '.', '_', '-', at
    most MAX_NAME characters); a name with separators or '..', an absolute path, or a too long one is a user error,
    so nothing is written outside `out`."""
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > MAX_NAME or name in (".", ".."):
        raise UserError(f"run name {name[:60]!r}{'...' if len(name) > 60 else ''} is not a plain directory name "
                        f"(at most {MAX_NAME} characters)",
                        "use letters, digits, '.', '_' and '-', starting with a letter or digit; --out picks the "
                        "folder it goes in")
    for folder in (Path(out), *Path(out).parents):
        if folder.is_symlink() and not folder.exists():
            raise UserError(f"--out {out}: {folder} is a symlink to {os.readlink(folder)}, which does not exist",
                            "create the folder it points to, or give --out a real folder")
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--out {out}: {folder} is a file, where a folder is to hold the run",
                            "give a folder for --out (it is created when missing)")
    return Path(out) / name


def registered(value: Any, names: Iterable[str], what: str) -> Any:
    """`value` (a name, or a list of names) when every name is in a registry; else a ValueError listing the names."""
    names = list(names)
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(names)}")
        return value
    unknown = [v for v in value if v not in names]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; expected some of {', '.join(names)}")
    return value


class PruneConfig(BaseModel):
    """Structured pruning: criterion, rate, schedule, ranking and the reference samples it reads."""

    model_config = ConfigDict(extra="forbid")
    criterion: str = "lrp"
    rate: float = Field(0.5, ge=0.0, lt=1.0)
    schedule: str = Field("oneshot", description="a registered schedule (edgewise.compress.schedules.SCHEDULES): "
                          "oneshot, iterative or adaptive")
    scope: Literal["global", "layer"] = "global"
    normalization: Literal["none", "sum", "l2"] | None = None
    min_channels: int = Field(1, ge=1)
    round_to: int | None = Field(None, ge=1)
    max_layer_rate: float = Field(0.9, gt=0.0, le=1.0, description="the largest share of one layer's channels that "
                                  "may go (1.0: no limit; a layer cut to one channel can silence the network)")
    ignore: list[str] = Field(default_factory=list)
    samples_per_class: int | None = Field(10, ge=1, description="reference samples per class (x10 scenes for "
                                          "segmentation); null: the whole validation split")
    step: float = Field(0.05, gt=0.0, lt=1.0)
    sf: float = Field(0.5, gt=0.0, lt=1.0)
    output: Literal["onehot", "logit", "contrast"] = Field("onehot", description="seed at the output for LRP, "
                                                           "gradient and Taylor scores")
    options: dict[str, Any] = Field(default_factory=dict, description="criterion options, e.g. LRP rules")
    finetune: FinetuneConfig | None = None

    @field_validator("criterion")
    @classmethod
    def _known_criterion(cls, value: str) -> str:
        from edgewise.compress.criteria import CRITERIA

        return registered(value, CRITERIA, "pruning criterion")

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, value: str) -> str:
        from edgewise.compress.schedules import SCHEDULES

        return registered(value, SCHEDULES, "pruning schedule")

    def ranking(self) -> Any:
        """The compress.Ranking these settings describe."""
        from edgewise import compress
        return compress.Ranking(self.scope, self.normalization, self.min_channels, self.round_to, self.max_layer_rate)


class CurvesConfig(BaseModel):
    """Score against one-shot pruning rate for several criteria (the area under each curve compares them)."""

    model_config = ConfigDict(extra="forbid")
    criteria: list[str] = Field(default_factory=lambda: ["lrp", "gradient", "taylor", "l1", "hrank", "apoz", "random"],
                                min_length=1)
    rates: list[float] = Field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
                               min_length=2)
    samples_per_class: int | None = Field(10, ge=1)
    finetune: FinetuneConfig | None = None

    @field_validator("criteria")
    @classmethod
    def _known_criteria(cls, values: list[str]) -> list[str]:
        from edgewise.compress.criteria import CRITERIA

        return registered(values, CRITERIA, "pruning criteria")

    @field_validator("rates")
    @classmethod
    def _rates_in_range(cls, values: list[float]) -> list[float]:
        bad = [v for v in values if not 0.0 <= v < 1.0]
        if bad:
            raise ValueError(f"pruning rates must be in [0, 1); got {bad}")
        return sorted(set(values))


QUANTIZER_FIELDS = {"lam": "lambda", "per_channel": "per_channel", "block": "block", "rho": "rho", "p": "p"}
"""The QuantizeConfig fields that are quantizer settings (constructor keyword -> recipe key)."""


class QuantizeConfig(BaseModel):
    """Weight quantization: method, bit width, entropy constraint (lambda) and optional training."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    method: str = Field("ecqx", description="a registered quantizer (edgewise.compress.quant.QUANTIZERS)")
    bits: int = Field(4, ge=2, le=8)
    lam: float = Field(0.05, ge=0.0, le=10.0, alias="lambda")
    per_channel: bool = Field(False, description="uniform only: one step per output channel")
    block: int | None = Field(None, description="one step per block of this many weights along the input axis (16, "
                              "32, 64, 128 or 256; null: per layer, or per channel with per_channel)")
    rho: float = Field(2.0, gt=0.0)
    p: float = Field(0.1, ge=0.0, le=1.0)
    samples_per_class: int | None = Field(10, ge=1)
    ignore: list[str] = Field(default_factory=list)
    train: QATConfig | None = None

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        from edgewise.compress.quant import QUANTIZERS

        return registered(value, QUANTIZERS, "quantization method")

    @field_validator("block")
    @classmethod
    def _block_size(cls, value: int | None) -> int | None:
        from edgewise.base.grid import check_block

        try:
            check_block(value)
        except UserError as exc:
            raise ValueError(f"{exc.problem}; {exc.fix}") from None
        return value

    @model_validator(mode="after")
    def _settings_the_method_takes(self) -> QuantizeConfig:
        from edgewise.compress.quant import QUANTIZERS, quantizer_settings

        accepted = quantizer_settings(self.method)
        if self.block is not None and "block" not in accepted:
            blocked = [n for n in QUANTIZERS if "block" in quantizer_settings(n)]
            raise ValueError(f"quantizer {self.method} has no block-wise steps; block is for {', '.join(blocked)}")
        # a setting given for another method would be ignored: the run would not be the one asked for (one at its
        # default changes nothing, and configs travel as full dumps to sweep workers)
        ignored = sorted(QUANTIZER_FIELDS[k] for k in QUANTIZER_FIELDS
                         if k not in accepted and getattr(self, k) != type(self).model_fields[k].default)
        if ignored:
            raise ValueError(f"quantizer {self.method} takes no {', '.join(ignored)}; its settings are "
                             f"{', '.join(QUANTIZER_FIELDS.get(k, k) for k in accepted)}")
        return self

    def quantizer_settings(self) -> dict[str, Any]:
        """The settings of this config that its method's quantizer takes, by constructor keyword."""
        from edgewise.compress.quant import quantizer_settings

        return {k: getattr(self, k) for k in quantizer_settings(self.method) if k in QUANTIZER_FIELDS}


class TensorRTConfig(BaseModel):
    """A TensorRT engine: built here when TensorRT and a CUDA device exist, else the trtexec command for the board."""

    model_config = ConfigDict(extra="forbid")
    precision: Literal["fp32", "fp16", "int8", "int4"] = "fp16"
    max_batch: int = Field(64, ge=1)
    workspace_mib: int = Field(1024, ge=16)
    required: bool = Field(False, description="fail the run when TensorRT is unavailable here")


class W4A8Config(BaseModel):
    """The quantized model with 8-bit activations too: ONNX Q/DQ for int8 kernels (edgewise.export.w4a8)."""

    model_config = ConfigDict(extra="forbid")
    calibrator: Literal["max", "percentile", "entropy"] = Field("max", description="how each activation tensor's "
                                                                "range is calibrated")
    samples: int = Field(256, ge=1, le=100_000, description="training samples the ranges are calibrated on")
    activations: Literal["uint8", "int8"] = Field("uint8", description="uint8: ONNX Runtime's x86 int8 kernels and "
                                                  "the FantastIC4 kernel's encoding; int8: symmetric, for TensorRT")


class ExportConfig(BaseModel):
    """ONNX export of the float and the compressed model, verified against torch after writing."""

    model_config = ConfigDict(extra="forbid")
    dynamic_batch: bool = True
    probe_samples: int = Field(8, ge=1)
    tensorrt: TensorRTConfig | None = None
    w4a8: W4A8Config | None = Field(None, description="also export the quantized model with 8-bit activations, as "
                                    "the version deployed and benchmarked")


class DeployConfig(BaseModel):
    """A deploy bundle of the compressed model for a board; optionally a tarball copied over scp."""

    model_config = ConfigDict(extra="forbid")
    tar: bool = False
    to: str | None = Field(None, description="user@host:/path to copy the bundle to with scp")
    precision: Literal["fp32", "fp16", "int8", "int4"] = "fp16"
    sign_key: Path | None = Field(None, description="a key file (edgewise bundle keygen): the manifest carries its "
                                  "HMAC-SHA256, checked by bundle verify --key and run.py --key")


class EmulateConfig(BaseModel):
    """The FantastIC4 integer kernel on the quantized MLP, and its emulated costs on accelerator targets."""

    model_config = ConfigDict(extra="forbid")
    targets: list[str] = Field(default_factory=lambda: ["fantastic4-fpga", "fantastic4-asic"], min_length=1,
                               description="emulated accelerators (targets of kind emulated)")
    activation_bits: int = Field(8, ge=2, le=16)
    acc_bits: int = Field(32, ge=8, le=64)
    calibrator: Literal["max", "percentile", "entropy"] = Field("max", description="how activation ranges are "
                                                                "calibrated on the training split")
    round_float_weights: bool = Field(False, description="a model brought as ONNX with float weights: round them "
                                      "to the 4-bit grid (per layer, no retraining) to emulate it")

    @field_validator("targets")
    @classmethod
    def _emulated_targets(cls, values: list[str]) -> list[str]:
        from edgewise.targets import target_names

        return registered(values, target_names(kind="emulated"), "emulated accelerators")


class BenchStageConfig(BaseModel):
    """Latency, memory and energy of every exported model on each target (measured, emulated or estimated)."""

    model_config = ConfigDict(extra="forbid")
    targets: list[str] = Field(default_factory=lambda: ["x86-host"], min_length=1)
    iterations: int = Field(100, ge=1, le=10_000_000)
    duration_s: float = Field(1.0, ge=0, le=3600, allow_inf_nan=False)
    threads: int | None = Field(None, ge=1, le=1024)
    energy_window_s: float = Field(2.0, gt=0, le=3600, allow_inf_nan=False)
    inputs: list[str] = Field(default_factory=list, description="the model's inputs beyond the data's sample, as "
                              "`edgewise bench --input` takes them: NAME:SHAPE[:DTYPE][=VALUE]")
    precision: Literal["fp32", "fp16", "int8"] | None = Field(None, description="boards: the TensorRT engine "
                                                               "precision the estimate assumes (default fp16)")
    board_results: dict[str, Path] = Field(default_factory=dict, description="target -> result.json from the "
                                           "bundle's run.py on that board: replaces the estimate")

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, values: list[str]) -> list[str]:
        from edgewise.targets import target_names

        return registered(values, target_names(), "targets")

    @field_validator("inputs")
    @classmethod
    def _input_forms(cls, values: list[str]) -> list[str]:
        from edgewise.bench.inputs import parse_request

        for value in values:
            try:
                parse_request(value)
            except UserError as exc:
                raise ValueError(exc.problem) from None
        return values


class ExpertConfig(PruneConfig):
    """A class-specific expert: pruning whose scores only see the chosen classes (names or indices)."""

    name: str = Field(pattern=NAME_PATTERN, max_length=MAX_NAME)
    classes: list[str | int] = Field(min_length=1)


class ModelEntry(BaseModel):
    """One model of a recipe: a zoo reference (`zoo: digits-mlp`), an architecture to train, a torch model file
    (`file:`) or an ONNX file (`onnx:`), with the data it is scored on."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN, max_length=MAX_NAME)
    arch: str | None = None
    file: Path | None = Field(None, description="a trained torch model (.pt, the whole module) instead of training")
    trusted: bool = Field(False, description="file: unpickle it even when it names code of your own (that code runs "
                          "while it loads): only for files you trust")
    weights: Path | None = Field(None, description="with arch: a state_dict (.pt) to load into it instead of "
                                 "training (loads without running any code of the file)")
    onnx: Path | None = Field(None, description="an ONNX model: benchmarked and emulated as it is, or converted to "
                              "torch (onnx2torch) when prune, fold, quantize or encode is on")
    arch_args: dict[str, Any] = Field(default_factory=dict)
    data: DataSpec
    train: TrainConfig = Field(default_factory=TrainConfig)
    seed: int = Field(0, ge=0, le=2**32 - 1, description="numpy's and torch's generators take 32-bit seeds")
    prune: PruneConfig | None = None
    experts: list[ExpertConfig] = Field(default_factory=list)
    curves: CurvesConfig | None = None
    fold: bool = Field(False, description="fold BatchNorm into the preceding layers before quantizing")
    quantize: QuantizeConfig | None = None
    encode: bool = Field(False, description="code the quantized weights losslessly with NNCodec")
    export: ExportConfig | None = None
    deploy: DeployConfig | None = None
    emulate: EmulateConfig | None = None
    bench: BenchStageConfig | None = None
    expert_unions: list[list[str]] = Field(default_factory=list, description="experts to combine (union of channels)")

    @model_validator(mode="after")
    def _stages_fit(self) -> ModelEntry:
        given = [k for k in ("arch", "file", "onnx") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a model needs exactly one of arch (train it), file (a torch .pt) or onnx (an ONNX "
                             f"file); got {', '.join(given) or 'none'}")
        check_entry(self)
        if self.trusted and self.file is None:
            raise ValueError("trusted applies to a model file (file:); other sources are never unpickled as a whole")
        if self.weights is not None and self.arch is None:
            raise ValueError("weights (a state_dict) need the architecture they fit: give arch too")
        if self.emulate is not None and self.quantize is not None and self.quantize.bits > 4:
            raise ValueError(f"emulate runs FantastIC4's 4-bit weights, and quantize.bits is {self.quantize.bits}; "
                             "quantize to 4 bits or fewer, or remove emulate")
        return self

    @model_validator(mode="after")
    def _unions_name_experts(self) -> ModelEntry:
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
        if value is not None and value not in ARCHITECTURES and not value.startswith("torchvision:"):
            raise ValueError(f"unknown architecture {value!r}; expected one of "
                             f"{', '.join(ARCHITECTURES)} or torchvision:<name>")
        return value


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
            file = regular_file(path, "recipe", "give the path of a YAML recipe file")
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
