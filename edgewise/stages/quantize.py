"""The fold, quantize and encode stages, and the size ladder they complete."""

from __future__ import annotations

import copy
import functools
import time
from typing import Any

import torch

import compress
from bench.plots import size_ladder as plot_size_ladder
from bench.report import Section
from bench.units import binary_bytes
from compress.quant.qat import train_quantized
from compress.size import ladder_row, packed_bytes, weight_count
from edgewise.atomic import write_bytes, write_json
from edgewise.modelio import load_model, save_model
from edgewise.recipe import QuantizeConfig
from edgewise.records import load_records, save_records
from edgewise.rundir import StageWindow
from edgewise.stages.state import ModelState, score_model
from edgewise.zoo.dataset import Dataset
from edgewise.zoo.training import evaluate


def fold_stage(state: ModelState) -> None:
    """Fold every BatchNorm into the layer before it; the outputs are checked to stay the same."""

    def fold(st: StageWindow) -> dict[str, Any]:
        example = state.data.val.x[:8]
        folded, names = compress.fold_batchnorm(state.current, example)
        with torch.no_grad():
            diff = float((folded(example) - state.current.eval()(example)).abs().max())
        st.metrics.update(folded=names, max_abs_diff=diff)
        card = {**state.card, "stage": f"{state.current_label}, folded"}
        st.add_output(save_model(folded, st.path("model.pt"), card))
        return {}

    out = state.stage("fold", {}, [state.current_path], fold)
    state.advance(load_model(out.files["model.pt"])[0], state.current_label, out.files["model.pt"])


def quantize_model(module: torch.nn.Module, data: Dataset, config: QuantizeConfig, seed: int = 0,
                   label: str = "QAT") -> compress.QuantizedModel:
    """Quantize `module` as `config` says: ECQx relevances from the validation split, training on the train split."""
    ref = None
    if config.method == "ecqx":
        ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, config.samples_per_class,
                                                   output="logit")
    train = None
    if config.train is not None:
        t = config.train
        train = functools.partial(
            train_quantized, x=data.train.x, y=data.train.y, epochs=t.epochs, lr=t.lr, batch_size=t.batch_size,
            patience=t.patience, relevance_every=t.relevance_every, seed=seed,
            score=lambda m: evaluate(m, data.val, data.task)["score"], label=label)
    return compress.quantize(module, config.method, config.bits, lam=config.lam, ref=ref,
                             per_channel=config.per_channel, rho=config.rho, p=config.p,
                             ignore=tuple(config.ignore), train=train)


def quantize_stage(state: ModelState, config: QuantizeConfig) -> compress.QuantizedModel:
    """Quantize the current model's weight layers; save the records (.npz) and the quantized model, score it."""
    data, name = state.data, state.entry.name
    label = f"{state.current_label} + {config.method} {config.bits}-bit"

    def quantize(st: StageWindow) -> dict[str, Any]:
        result = quantize_model(state.current, data, config, state.entry.seed, f"QAT {name}")
        st.add_output(save_model(result.model, st.path("model.pt"), {**state.card, "stage": label}))
        st.add_output(save_records(st.path("quantized.npz"), result.records,
                                   compress.floats_of(result.model, result.records)))
        summary = result.summary()
        st.add_output(write_json(st.path("quantize.json"), summary))
        size = packed_bytes(result.model, result.records)
        row = score_model(state, st, result.model, label, size)
        st.metrics.update(sparsity=summary["sparsity"], entropy_bits=summary["entropy_bits"], packed_bytes=size)
        return {"rows": [row], "history": result.history,
                "ladder": [ladder_row(f"{config.method} {config.bits}-bit packed", size, weight_count(result.model),
                                      row["score"], sparsity=summary["sparsity"],
                                      entropy_bits=summary["entropy_bits"])]}

    out = state.stage("quantize", config.model_dump(mode="json", by_alias=True), [state.current_path], quantize)
    module = load_model(out.files["model.pt"])[0]
    records, _ = load_records(out.files["quantized.npz"])
    result = compress.QuantizedModel(module, records, config.method, config.bits, out["history"])
    state.advance(module, label, out.files["model.pt"])
    state.quantized = result
    return result


def encode_stage(state: ModelState, quantized: compress.QuantizedModel) -> None:
    """Code the quantized records with NNCodec, decode them back into the model, and check nothing changed."""

    def encode(st: StageWindow) -> dict[str, Any]:
        start = time.perf_counter()
        stream = compress.encode(quantized.records, compress.floats_of(quantized.model, quantized.records))
        encode_s = time.perf_counter() - start
        path = write_bytes(st.path("model.nnc"), stream.data)
        st.add_output(path)
        start = time.perf_counter()
        records, floats = compress.decode(path.read_bytes())
        decode_s = time.perf_counter() - start
        rebuilt = compress.load_decoded(copy.deepcopy(quantized.model), records, floats)
        row = score_model(state, st, rebuilt, f"{state.current_label} + NNCodec", len(stream.data))
        st.metrics.update(bytes=len(stream.data), payload_bytes=stream.payload_bytes,
                          bits_per_weight=stream.bits_per_weight, encode_s=encode_s, decode_s=decode_s)
        return {"rows": [row], "ladder": [ladder_row("NNCodec bitstream", len(stream.data), stream.weights,
                                                     row["score"], sparsity=quantized.summary()["sparsity"])]}

    out = state.stage("encode", {}, [state.current_path], encode)
    state.bitstream_path = out.files["model.nnc"]


def ladder_section(state: ModelState) -> None:
    """Add the size ladder (table and plot) of this model to the report, in bytes throughout."""
    rungs = state.ladder
    base = rungs[0]["bytes"]
    rows = [(r["stage"], binary_bytes(r["bytes"]), f"{r['bytes']:,}", f"{base / r['bytes']:.1f}x",
             f"{r['bits_per_weight']:.2f}", "" if r.get("sparsity") is None else f"{r['sparsity']:.1%}",
             "" if r.get("entropy_bits") is None else f"{r['entropy_bits']:.2f}",
             "" if r["score"] is None else f"{r['score']:.4f}") for r in rungs]
    state.sections.append(Section(
        f"Size ladder of {state.entry.name}",
        ("stage", "size", "bytes", "smaller than float32", "bits / weight", "sparsity", "entropy [bit]", "score"),
        rows,
        "Bytes throughout. float32 and pruned: 4 bytes per parameter and buffer; packed: levels at their bit width "
        "(two 4-bit levels per byte) plus float32 steps, biases and other parameters; NNCodec: the whole .nnc file. "
        "Bits per weight: size x 8 over the weights of the conv and linear layers.",
        plot_size_ladder(rungs, state.entry.name),
    ))
    write_json(state.run.root / state.entry.name / "size_ladder.json", rungs)
