"""The size ladder of a model: float32 -> pruned -> packed low-bit -> NNCodec bitstream, in bytes, with its plot."""

from __future__ import annotations

from typing import Any

from edgewise.report.plots import size_ladder as plot_size_ladder
from edgewise.report.section import Section
from edgewise.report.units import binary_bytes


def ladder_section(model: str, rungs: list[dict[str, Any]]) -> Section:
    """The report section of a model's size ladder: one row per rung (a version's size record), table and plot."""
    base = rungs[0]["bytes"]
    rows = [(r["stage"], binary_bytes(r["bytes"]), f"{r['bytes']:,}", f"{base / r['bytes']:.1f}x",
             f"{r['bits_per_weight']:.2f}", "" if r.get("sparsity") is None else f"{r['sparsity']:.1%}",
             "" if r.get("entropy_bits") is None else f"{r['entropy_bits']:.2f}",
             "" if r["score"] is None else f"{r['score']:.4f}") for r in rungs]
    return Section(
        f"Size ladder of {model}",
        ("stage", "size", "bytes", "smaller than float32", "bits / weight", "sparsity", "entropy [bit]", "score"),
        rows,
        "Bytes throughout. float32 and pruned: 4 bytes per parameter and buffer; packed: levels at their bit width "
        "(two 4-bit levels per byte) plus float32 steps, biases and other parameters; NNCodec: the whole .nnc file. "
        "Bits per weight: size x 8 over the weights of the conv and linear layers.",
        plot_size_ladder(rungs, model),
    )
