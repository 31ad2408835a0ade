"""Quantization and coding: size ladders, accuracy against bytes for uniform, ECQ and ECQx, with and without pruning."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.suite import Figure
from edgewise.base.atomic import write_bytes, write_json
from edgewise.report.plots import score_vs_bytes

OUT = Path("runs/bench")
LAMBDAS = {"digits-mlp": [0.02, 0.05, 0.1, 0.2, 0.4], "digits-cnn": [0.02, 0.05, 0.1, 0.2, 0.4],
           "rail-net": [0.05, 0.2]}
QAT_EPOCHS = {"digits-mlp": 10, "digits-cnn": 10, "rail-net": 4}


def _study(name: str) -> tuple[list[dict[str, Any]], float, int]:
    from edgewise import compress
    from edgewise.compress.quant.qat import train_quantized
    from edgewise.compress.size import float_bytes, packed_bytes
    from edgewise.zoo.cache import trained_model
    from edgewise.zoo.data import load_data
    from edgewise.zoo.reference import REFERENCES
    from edgewise.zoo.training import TrainConfig, evaluate, fit

    ref_entry = REFERENCES[name]
    data = load_data(ref_entry.data)
    model = trained_model(ref_entry.arch, data, ref_entry.train, 0, ref_entry.arch_args).module
    float_score = evaluate(model, data.test, data.task)["score"]
    float_size = float_bytes(model)
    ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, 10, output="logit")
    example = data.val.x[:8]
    pruned = compress.prune(model, ref, "lrp", 0.5,
                            finetune=lambda m: fit(m, data, TrainConfig(epochs=5, lr=1e-3, patience=5))).model

    def score(m) -> float:
        return evaluate(m, data.test, data.task)["score"]

    points = []
    for is_pruned, base in ((False, model), (True, pruned)):
        base, _ = compress.fold_batchnorm(base, example)
        train = functools.partial(train_quantized, x=data.train.x, y=data.train.y, epochs=QAT_EPOCHS[name],
                                  patience=3, score=lambda m: evaluate(m, data.val, data.task)["score"])
        configs = [("uniform", 0.0)] + [(m, lam) for lam in LAMBDAS[name] for m in ("ecq", "ecqx")]
        for method, lam in configs:
            settings = {} if method == "uniform" else {"lam": lam, "train": train}
            q = compress.quantize(base, method, 4, ref=ref, **settings)
            stream = compress.encode(q.records, compress.floats_of(q.model, q.records))
            summary = q.summary()
            points.append({"pruned": is_pruned, "method": method, "lambda": lam, "score": score(q.model),
                           "packed_bytes": packed_bytes(q.model, q.records), "nnc_bytes": len(stream.data),
                           "sparsity": summary["sparsity"], "entropy_bits": summary["entropy_bits"],
                           "bits_per_weight": stream.bits_per_weight, "pruned_float_bytes": float_bytes(base)})
    return points, float_score, float_size


def _codec_speed() -> list[Figure]:
    from edgewise import compress
    from edgewise.base.records import QuantizedLayer

    rng = np.random.default_rng(0)
    levels = np.clip(np.round(rng.normal(0, 1.2, (4096, 4096))), -8, 7).astype(np.int8)
    levels[rng.random(levels.shape) < 0.5] = 0
    records = {"fc": QuantizedLayer("fc", "Linear", levels, np.float32(0.01), 4, -8, 7)}
    megabytes = levels.size * 4 / 2**20  # as float32 weights
    start = time.perf_counter()
    stream = compress.encode(records)  # includes the verifying decode
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    compress.decode(stream.data)
    decode_s = time.perf_counter() - start
    return [
        Figure("NNCodec encode (incl. verify) per MB of float32 weights", encode_s / megabytes * 1e3, "ms/MB",
               note=f"4096x4096 4-bit layer, 50% zeros, {stream.bits_per_weight:.2f} bit/weight"),
        Figure("NNCodec decode per MB of float32 weights", decode_s / megabytes * 1e3, "ms/MB"),
    ]


def run() -> list[Figure]:
    """Ladders for the digits MLP, digits CNN and rail net; the targets; NNCodec speed."""
    figures: list[Figure] = []
    for name in LAMBDAS:
        points, float_score, float_size = _study(name)
        write_json(OUT / f"quantization-{name}.json", {"float_score": float_score, "float_bytes": float_size,
                                                        "points": points})
        write_bytes(OUT / f"quantization-{name}.png", score_vs_bytes(points, f"{name}: score against bitstream size"))
        for method in ("ecq", "ecqx"):
            mine = [p for p in points if p["pruned"] and p["method"] == method]
            kept = [p for p in mine if p["score"] >= float_score - 0.01]
            if kept:
                best = min(kept, key=lambda p: p["nnc_bytes"])
                label = f"{name} prune+{method.upper()}+NNCodec, <= 1 pt lost"
            else:
                best = max(mine, key=lambda p: p["score"])
                label = f"{name} prune+{method.upper()}+NNCodec: no point within 1 pt (best score)"
            figures.append(Figure(label, float_size / best["nnc_bytes"], "x smaller", target=">= 30x at <= 1 pt",
                                  note=f"lambda {best['lambda']}, score {best['score']:.4f} vs {float_score:.4f}"))
        for pruned in (False, True):
            uniform = next(p for p in points if p["pruned"] == pruned and p["method"] == "uniform")
            matching = [p for p in points if p["pruned"] == pruned and p["method"] == "ecqx"
                        and p["score"] >= uniform["score"] - 0.005]
            tag = "pruned, " if pruned else ""
            if matching:
                best = min(matching, key=lambda p: p["nnc_bytes"])
                figures.append(Figure(f"{name} {tag}ECQx+NNC smaller than uniform+NNC", 1 - best["nnc_bytes"] /
                                      uniform["nnc_bytes"], "fraction", target=">= 0.20 at equal accuracy",
                                      note=f"{best['nnc_bytes']:,} vs {uniform['nnc_bytes']:,} B; score "
                                           f"{best['score']:.4f} vs {uniform['score']:.4f}"))
            else:
                figures.append(Figure(f"{name} {tag}ECQx never matched uniform's score", uniform["score"], "score",
                                      target=">= 0.20 smaller at equal accuracy"))
    return figures + _codec_speed()
