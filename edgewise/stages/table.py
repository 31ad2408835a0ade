"""The stage table: every pipeline stage once, in run order, with its recipe section, prerequisites and run function.

The pipeline's loop, the names `--force` accepts, the recipe's model entry (each row's section and
its config, edgewise.recipe.ModelEntry) and the recipe's checks (which stages a model source
allows, which stages need another) all derive from this table, so a new stage is its module, its
config module and one row here. Run functions are named as `module:function` and imported when
the stage runs; configs are plain pydantic models: reading the table (to validate a recipe)
imports no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from edgewise.stages.bench_config import BenchStageConfig
from edgewise.stages.curves_config import CurvesConfig
from edgewise.stages.deploy_config import DeployConfig
from edgewise.stages.emulate_config import EmulateConfig
from edgewise.stages.experts_config import ExpertConfig
from edgewise.stages.export_config import ExportConfig
from edgewise.stages.prune_config import PruneConfig
from edgewise.stages.quantize_config import QuantizeConfig
from edgewise.zoo.training_config import TrainConfig

TORCH_SOURCES = ("arch", "file")  # a model trained here, or a torch model file the user gives
ALL_SOURCES = (*TORCH_SOURCES, "onnx")


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    `section` is the model-entry field that switches the stage on and configures it; `needs`
    names stages that must be switched on too (for torch models: an ONNX model is itself the
    exported, quantized file those stages read) and `why` says what the stage does with them;
    `sources` are the model sources (arch, file, onnx) it applies to; `run` is `module:function`,
    called as function(state, config); `field` is the section's (type, pydantic Field) in the
    recipe's model entry (None: the section is one of the entry's own fields, as `onnx` is).
    """

    name: str
    section: str
    run: str
    needs: tuple[str, ...] = ()
    why: str = ""
    sources: tuple[str, ...] = TORCH_SOURCES
    field: tuple[Any, Any] | None = None

    def config(self, entry: Any) -> Any:
        """This stage's configuration in a recipe model entry (None, False or empty when it is off)."""
        return getattr(entry, self.section)

    def enabled(self, entry: Any) -> bool:
        """Whether the entry switches this stage on (its section is set and not empty)."""
        value = self.config(entry)
        return value is not None and value is not False and value != []

    def applies(self, entry: Any) -> bool:
        """Whether the stage runs for this entry: switched on, and for the entry's model source."""
        return source(entry) in self.sources and self.enabled(entry)

    @property
    def function(self) -> Callable[[Any, Any], None]:
        """The run function, imported now."""
        module, _, name = self.run.partition(":")
        return getattr(importlib.import_module(module), name)


def _section(config: type, description: str = "") -> tuple[Any, Any]:
    """An optional section holding `config` (off when left out)."""
    return config | None, Field(None, description=description or None)


def _switch(description: str) -> tuple[Any, Any]:
    """A section that is a switch (on with `true`)."""
    return bool, Field(False, description=description)


STAGES = (
    Stage("train", "train", "edgewise.stages.train:train_stage",
          field=(TrainConfig, Field(default_factory=TrainConfig))),
    Stage("load", "onnx", "edgewise.stages.load:load_stage", sources=("onnx",)),
    Stage("prune", "prune", "edgewise.stages.prune:prune_stage", sources=ALL_SOURCES, field=_section(PruneConfig)),
    Stage("experts", "experts", "edgewise.stages.experts:experts_stage",
          field=(list[ExpertConfig], Field(default_factory=list))),
    Stage("curves", "curves", "edgewise.stages.curves:curves_stage", field=_section(CurvesConfig)),
    Stage("fold", "fold", "edgewise.stages.fold:fold_stage", sources=ALL_SOURCES,
          field=_switch("fold BatchNorm into the preceding layers before quantizing")),
    Stage("quantize", "quantize", "edgewise.stages.quantize:quantize_stage", sources=ALL_SOURCES,
          field=_section(QuantizeConfig)),
    Stage("encode", "encode", "edgewise.stages.encode:encode_stage", ("quantize",), "codes quantized weights",
          ALL_SOURCES, _switch("code the quantized weights losslessly with NNCodec")),
    # emulate after export: a W4A8 file's activation scales are the integer kernel's, so both compute one set of
    # integers
    Stage("export", "export", "edgewise.stages.export:export_stage", sources=ALL_SOURCES,
          field=_section(ExportConfig)),
    Stage("emulate", "emulate", "edgewise.stages.emulate:emulate_stage", ("quantize",),
          "runs the 4-bit integer kernel", ALL_SOURCES, _section(EmulateConfig)),
    Stage("deploy", "deploy", "edgewise.stages.deploy:deploy_stage", ("export",), "bundles the exported model",
          field=_section(DeployConfig)),
    Stage("bench", "bench", "edgewise.stages.bench:bench_stage", ("export",), "measures the exported ONNX files",
          ALL_SOURCES, _section(BenchStageConfig)),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def source(entry: Any) -> str:
    """Where a recipe model comes from: `arch` (trained here), `file` (a torch model) or `onnx` (an ONNX file)."""
    return next(s for s in ("onnx", "file", "arch") if getattr(entry, s) is not None)


COMPRESSION = ("prune", "fold", "quantize", "encode")
"""The stages that change the weights: for an ONNX model they work on its conversion to torch (edgewise.onnxin)."""


def compresses(entry: Any) -> bool:
    """Whether the entry switches on a stage that changes the model's weights."""
    return any(stage(name).enabled(entry) for name in COMPRESSION)


def stage(name: str) -> Stage:
    """The table's row for stage `name`."""
    return next(s for s in STAGES if s.name == name)


def check_entry(entry: Any) -> None:
    """Raise ValueError when an entry switches on a stage its source does not allow, or one without its needs."""
    kind = source(entry)
    for s in STAGES:
        if not s.enabled(entry) or s.section == "train":
            continue
        if kind not in s.sources:
            allowed = ", ".join(x.name for x in STAGES if kind in x.sources and x.section != kind)
            raise ValueError(f"an {kind.upper() if kind == 'onnx' else kind} model can only run {allowed}, not "
                             f"{s.name}; give the torch model (file:) for it")
        if kind == "onnx" and not compresses(entry):
            continue  # the ONNX file is the exported, quantized model those stages read
        for needed in s.needs:
            if not stage(needed).enabled(entry):
                raise ValueError(f"{s.name} {s.why}; add a {stage(needed).section} section (or remove {s.name})")
