"""Pruning: accuracy against rate per criterion (AUC), with fine-tuning, LRP's scoring cost, and real CPU speed-up."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from benchmarks.suite import Figure, median_seconds
from edgewise.base.atomic import write_bytes, write_json
from edgewise.report.plots import rate_curves as plot_rate_curves

CRITERIA = ["lrp", "gradient", "taylor", "l1", "hrank", "apoz", "random"]
RATES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
MODELS = ["digits-cnn", "digits-vgg", "rail-net"]
OUT = Path("runs/bench")


def _load(name: str):
    from edgewise.zoo.cache import trained_model
    from edgewise.zoo.data import load_data
    from edgewise.zoo.reference import REFERENCES

    ref = REFERENCES[name]
    data = load_data(ref.data)
    return trained_model(ref.arch, data, ref.train, 0, ref.arch_args).module, data


def run() -> list[Figure]:
    """Curves for three models (no fine-tuning), two fine-tuned rates, LRP cost, and pruned vs unpruned latency."""
    from edgewise import compress
    from edgewise.compress.layers import weight_layers
    from edgewise.compress.study import rate_curves
    from edgewise.zoo.training import TrainConfig, evaluate, fit

    figures: list[Figure] = []
    for name in MODELS:
        model, data = _load(name)
        ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, 10)
        score_name = "mIoU" if data.task == "segmentation" else "accuracy"
        study = rate_curves(model, ref, CRITERIA, RATES, lambda m, d=data: evaluate(m, d.test, d.task)["score"])
        write_json(OUT / f"pruning-{name}.json", study)
        write_bytes(OUT / f"pruning-{name}.png", plot_rate_curves(study["curves"], score_name,
                                                                  f"{name}: one-shot, {len(ref.x)} reference samples"))
        for criterion, curve in study["curves"].items():
            figures.append(Figure(f"{name} AUC {criterion}", curve["auc"], score_name, note="rates 0..0.9, no FT"))
        lrp, l1 = study["curves"]["lrp"]["auc"], study["curves"]["l1"]["auc"]
        figures.append(Figure(f"{name} AUC lrp - l1", lrp - l1, score_name, target="> 0 (seeds' claim)"))

        settings = TrainConfig(epochs=3, lr=1e-3, patience=3)
        for rate in (0.5, 0.7):
            for criterion in ("lrp", "l1"):
                result = compress.prune(model, ref, criterion, rate,
                                        finetune=lambda m, d=data, s=settings: fit(m, d, s, label="fine-tune"))
                figures.append(Figure(f"{name} {criterion} {rate:.0%} + 3 epochs FT",
                                      evaluate(result.model, data.test, data.task)["score"], score_name,
                                      note=f"unpruned {study['unpruned_score']:.3f}"))

    model, data = _load("digits-cnn")
    x, y = data.val.x[:64], data.val.y[:64]
    ref = compress.ReferenceSamples(x, y, batch_size=64)
    names = set(weight_layers(model))

    def forward_backward() -> None:
        m = copy.deepcopy(model)
        torch.nn.functional.cross_entropy(m(x), y).backward()

    plain = median_seconds(forward_backward)
    lrp = median_seconds(lambda: compress.get_criterion("lrp").scores(model, names, ref))
    figures.append(Figure("LRP scoring / forward+backward", lrp / plain, "x", note=f"digits-cnn, batch 64, "
                          f"{lrp / 64 * 1e3:.2f} ms per sample"))

    for name in ("digits-vgg", "rail-net"):
        model, data = _load(name)
        ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, 10)
        result = compress.prune(model, ref, "lrp", 0.5, ranking=compress.Ranking(scope="layer"))
        batch = data.test.x[:32]
        with torch.inference_mode():
            before = median_seconds(lambda m=model, b=batch: m(b), repeats=15, warmup=3)
            after = median_seconds(lambda m=result.model, b=batch: m(b), repeats=15, warmup=3)
        mac_ratio = result.before.macs / result.after.macs
        figures += [
            Figure(f"{name} torch CPU latency, 50% channels (batch 32)", before / after, "x speed-up",
                   note=f"{before * 1e3:.2f} -> {after * 1e3:.2f} ms; MAC ratio {mac_ratio:.2f}x"),
            Figure(f"{name} speed-up / MAC reduction", (before / after) / mac_ratio, "ratio",
                   note="small models: per-layer overheads dominate"),
        ]
    return figures
