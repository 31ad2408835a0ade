"""Zoo: rail-scene generation speed, and reference-model training (cold) against loading from the cache (warm)."""

from __future__ import annotations

import os
import tempfile
import time

from benchmarks.suite import Figure, median_seconds


def run() -> list[Figure]:
    """Measure scenes per second at 64 and 256 pixels, and train/load times of the reference models."""
    from edgewise.zoo.cache import trained_model
    from edgewise.zoo.data import load_data
    from edgewise.zoo.rail import render_scenes
    from edgewise.zoo.reference import REFERENCES

    figures = []
    for size, count in ((64, 64), (256, 8)):
        seconds = median_seconds(lambda size=size, count=count: render_scenes(size, count, seed=0), warmup=0)
        figures.append(Figure(f"rail scenes {size}x{size}", count / seconds, "scenes/s", note="median of 5"))
    saved = os.environ.get("EDGEWISE_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["EDGEWISE_CACHE"] = cache
        try:
            for name in ("digits-mlp", "digits-cnn", "rail-net"):
                ref = REFERENCES[name]
                data = load_data(ref.data)
                start = time.perf_counter()
                trained = trained_model(ref.arch, data, ref.train, 0, ref.arch_args)
                cold = time.perf_counter() - start
                warm = median_seconds(lambda ref=ref, data=data: trained_model(ref.arch, data, ref.train, 0,
                                                                               ref.arch_args), warmup=0)
                score = trained.card["test_metrics"]
                figures += [
                    Figure(f"{name} train (cold)", cold, "s", note=f"test {score['score_name']} {score['score']:.4f}"),
                    Figure(f"{name} load (warm)", warm * 1e3, "ms", target="faster than training",
                           note="median of 5"),
                ]
        finally:
            if saved is None:
                os.environ.pop("EDGEWISE_CACHE", None)
            else:
                os.environ["EDGEWISE_CACHE"] = saved
    return figures
