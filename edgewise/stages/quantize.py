"""The quantize stage: the working model's weight layers at low bit width (uniform, ECQ, ECQx), as the quantized
version with its records."""

from __future__ import annotations

import functools
from typing import Any

import torch

from edgewise import compress
from edgewise.base.atomic import write_json
from edgewise.base.records import save_records
from edgewise.compress.quant.qat import train_quantized
from edgewise.compress.size import ladder_row, packed_bytes, weight_count
from edgewise.core.ledger import QUANTIZED, RECORDS, TORCH
from edgewise.core.modelio import save_model
from edgewise.core.rundir import StageWindow
from edgewise.stages.quantize_config import QuantizeConfig
from edgewise.stages.scoring import score_model
from edgewise.stages.state import ModelState
from edgewise.zoo.dataset import Dataset
from edgewise.zoo.training import evaluate
from edgewise.zoo.training_config import QATConfig


def distills(train: QATConfig, data: Dataset) -> bool:
    """Whether quantization-aware training as `train` says distils from the float model on `data`: when asked, or
    (auto) when the data's labels are a source model's outputs, whose soft form the float model still has."""
    return train.targets == "distill" or (train.targets == "auto" and data.reference is not None)


def quantize_model(module: torch.nn.Module, data: Dataset, config: QuantizeConfig, seed: int = 0,
                   label: str = "QAT") -> compress.QuantizedModel:
    """Quantize `module` as `config` says: reference samples from the validation split where the quantizer reads
    them (ECQx's relevances, the calibration inputs of data-aware rounding), training on the train split when the
    config asks for it."""
    quantizer = compress.get_quantizer(config.method, **config.quantizer_settings())
    ref = None
    if quantizer.reads_samples():
        ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, config.samples_per_class,
                                                   output="logit")
    train = None
    if config.train is not None:
        t = config.train
        train = functools.partial(
            train_quantized, x=data.train.x, y=data.train.y, epochs=t.epochs, lr=t.lr, batch_size=t.batch_size,
            patience=t.patience, relevance_every=t.relevance_every, seed=seed, activation_bits=t.activation_bits,
            weight_decay=t.weight_decay, teacher=module if distills(t, data) else None, temperature=t.temperature,
            score=lambda m: evaluate(m, data.val, data.task)["score"], label=label)
    return compress.quantize(module, quantizer, config.bits, ref=ref, ignore=tuple(config.ignore), train=train)


def quantize_stage(state: ModelState, config: QuantizeConfig) -> None:
    """Quantize the working model's weight layers; save the records (.npz) and the quantized model, score it."""
    source = state.ledger.working()
    label = f"{source.label} + {config.method} {config.bits}-bit"

    def quantize(st: StageWindow) -> dict[str, Any]:
        result = quantize_model(state.compute_module(source), state.data, config, state.entry.seed,
                                f"QAT {state.entry.name}")
        st.add_output(save_model(result.model, st.path("model.pt"), {**state.card, "stage": label}))
        st.add_output(save_records(st.path("quantized.npz"), result.records,
                                   compress.floats_of(result.model, result.records)))
        summary = result.summary()
        st.add_output(write_json(st.path("quantize.json"), summary))
        size = packed_bytes(result.model, result.records)
        row = score_model(state, st, result.model, label, size)
        st.metrics.update(sparsity=summary["sparsity"], entropy_bits=summary["entropy_bits"], packed_bytes=size)
        rung = ladder_row(f"{config.method} {config.bits}-bit packed", size, weight_count(result.model), row["score"],
                          sparsity=summary["sparsity"], entropy_bits=summary["entropy_bits"])
        return {"versions": [{"id": QUANTIZED, "kind": QUANTIZED, "label": label, "parent": source.id, "row": row,
                              "files": {TORCH: "model.pt", RECORDS: "quantized.npz"}, "rung": rung}],
                "history": result.history}

    state.stage("quantize", config.model_dump(mode="json", by_alias=True), [source.files[TORCH]], quantize)
