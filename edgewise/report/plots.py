"""Report plots rendered to PNG bytes with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

MIN_POINTS = 2  # a plot of fewer points compares nothing: its figures stay in the table
LOG_SPAN = 10.0  # values spanning less than this ratio are drawn on a linear axis
_POINT_MARKERS = ("o", "s", "^", "D", "v")


def _lines(ax, series: dict[str, tuple[list[float], list[float]]], xlabel: str, ylabel: str, title: str = "",
           log_x: bool = False) -> None:
    """Draw labelled line series on `ax` with the report's axis, grid and legend style."""
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, "o-", markersize=3, label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _png(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


# how each kind of version is drawn: marker and the word in the legend
_KIND_MARKERS = {"float32": ("o", "float32"), "given": ("o", "given"), "pruned": ("s", "pruned"),
                 "quantized": ("^", "quantized"), "bitstream": ("D", "bitstream"),
                 "w4a8": ("v", "W4A8 (8-bit activations)")}


def score_vs_size(rows: Sequence[dict[str, Any]]) -> bytes | None:
    """Score against size (log scale) of each model's compression line: one line per model, a marker per kind.

    One panel per score metric (accuracy, mIoU, ...) with at least MIN_POINTS points (None when no
    metric has them): scores of different metrics are never drawn on one axis. Class-specific
    experts are left out (scored on their own classes, they have their own section). Kinds are told
    apart by markers, explained in the legend, so no label overlaps.
    """
    line = [r for r in rows if r.get("kind") in _KIND_MARKERS]
    metrics = [m for m in dict.fromkeys(r["score_name"] for r in line)
               if sum(r["score_name"] == m for r in line) >= MIN_POINTS]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.4 * min(len(metrics), 2), 3.8), dpi=110, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    models = list(dict.fromkeys(r["model"] for r in line))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for m, model in enumerate(models):
            mine = [r for r in line if r["model"] == model and r["score_name"] == metric]
            if not mine:
                continue
            colour = colours[m % len(colours)]
            ax.plot([r["size_bytes"] / 1024 for r in mine], [r["score"] for r in mine], "-", color=colour,
                    label=model, alpha=0.8)
            for r in mine:
                ax.plot(r["size_bytes"] / 1024, r["score"], _KIND_MARKERS[r["kind"]][0], color=colour, markersize=6)
        kinds = list(dict.fromkeys(r["kind"] for r in line if r["score_name"] == metric))
        handles = ax.get_legend_handles_labels()[0] + [
            plt.Line2D([], [], color="#555", marker=_KIND_MARKERS[k][0], linestyle="", label=_KIND_MARKERS[k][1])
            for k in kinds]
        # big and bad (lower right) is where compressed models never are
        ax.legend(handles=handles, fontsize=7, loc="lower right")
        ax.set_xscale("log")
        ax.set_xlabel("model size [KiB]")
        ax.set_ylabel(metric)
        ax.grid(True, which="both", alpha=0.3)
    return _png(fig)


def rate_curves(curves: dict[str, Any], score_name: str, title: str) -> bytes:
    """Score against pruning rate, one line per criterion, its area under the curve in the legend."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    series = {f"{c} (AUC {curve['auc']:.3f})": ([p["rate"] for p in curve["points"]],
                                                 [p["score"] for p in curve["points"]]) for c, curve in curves.items()}
    _lines(ax, series, "pruning rate (fraction of channels removed)", score_name, title)
    return _png(fig)


def panel_curves(panels: dict[str, dict[str, tuple[list[float], list[float]]]], xlabel: str, ylabel: str,
                 title: str) -> bytes:
    """Panels side by side on one y axis, each one line per series (e.g. a criterion's score against the share of
    MACs removed, one panel per stage: as cut, repaired, tuned)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.8), dpi=110, sharey=True, squeeze=False)
    for index, (ax, (name, series)) in enumerate(zip(axes[0], panels.items(), strict=True)):
        _lines(ax, series, xlabel, ylabel if index == 0 else "", name)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def size_ladder(rungs: Sequence[dict[str, Any]], title: str) -> bytes:
    """Horizontal bars of each rung's size in bytes (log scale), labelled with its score."""
    fig, ax = plt.subplots(figsize=(6.4, 0.55 * len(rungs) + 1.2), dpi=110)
    labels = [r["stage"] for r in rungs][::-1]
    sizes = [r["bytes"] for r in rungs][::-1]
    ax.barh(labels, sizes, color="#4c72b0")
    for y, r in enumerate(reversed(rungs)):
        score = "" if r["score"] is None else f"  score {r['score']:.3f}"
        ax.text(r["bytes"], y, f" {r['bytes']:,} B{score}", va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("bytes")
    ax.set_title(f"{title}: size ladder", fontsize=9)
    ax.set_xlim(min(sizes) / 2, max(sizes) * 20)
    return _png(fig)


def score_vs_bytes(points: Sequence[dict[str, Any]], title: str) -> bytes:
    """Score against bitstream size, one line per (pruned?, method) of a quantization study."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    series = {}
    for key in dict.fromkeys((p["pruned"], p["method"]) for p in points):
        mine = sorted((p for p in points if (p["pruned"], p["method"]) == key), key=lambda p: p["nnc_bytes"])
        label = f"{'pruned + ' if key[0] else ''}{key[1]} + NNCodec"
        series[label] = ([p["nnc_bytes"] / 1024 for p in mine], [p["score"] for p in mine])
    _lines(ax, series, "NNCodec bitstream [KiB]", "test score", title, log_x=True)
    return _png(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by any other (lower cost and higher score), sorted by cost."""
    front, best = [], float("-inf")
    for cost, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if score > best:
            front.append((cost, score))
            best = score
    return front


def _scale(ax, values: Sequence[float], log: bool) -> None:
    """A log x axis only where the values span at least LOG_SPAN (a narrower one printed its minor tick labels over
    each other), its minor ticks unlabelled."""
    if log and values and min(values) > 0 and max(values) / min(values) >= LOG_SPAN:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())


def pareto_scatter(points: Sequence[tuple[float, float, str]], xlabel: str, ylabel: str, title: str,
                   log_x: bool = True) -> bytes | None:
    """(cost, score, label) points with the Pareto front (lower cost, higher score) drawn as a line; each point has
    its own colour and marker, named in a legend beside the axes (labels written at the points overlapped). None
    for fewer than MIN_POINTS points: one point is no comparison."""
    if len(points) < MIN_POINTS:
        return None
    fig, ax = plt.subplots(figsize=(8.0, 3.8), dpi=110)
    for i, (cost, score, label) in enumerate(points):
        ax.scatter(cost, score, marker=_POINT_MARKERS[i // 10 % len(_POINT_MARKERS)], s=28, label=label, zorder=3)
    front = pareto_front([(c, s) for c, s, _ in points])
    ax.plot([c for c, _ in front], [s for _, s in front], "-", color="#555", linewidth=1, label="Pareto front")
    _scale(ax, [c for c, _, _ in points], log_x)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _png(fig)


def latency_pareto(records: Sequence[dict[str, Any]], title: str) -> bytes | None:
    """Score against measured median latency per configuration, with the Pareto front (None for one point)."""
    unit, factor = _time_unit([r["latency"]["median_ms"] for r in records])
    return pareto_scatter([(r["latency"]["median_ms"] * factor, r["score"], f"{r['stage']} @ {r['target']}")
                           for r in records], f"median latency [{unit}]", "score",
                          f"{title}: latency against score (measured)")


def _time_unit(values_ms: Sequence[float]) -> tuple[str, float]:
    """The unit (and the factor from milliseconds) that shows the median of `values_ms` between 1 and 1000."""
    middle = sorted(values_ms)[len(values_ms) // 2] if values_ms else 1.0
    for unit, factor in (("s", 1e-3), ("ms", 1.0), ("us", 1e3)):
        if middle * factor >= 1.0:
            return unit, factor
    return "ns", 1e6


_LATENCY_KINDS = {"measured": "#4c72b0", "emulated": "#dd8452", "estimated": "#55a868"}


def target_bars(records: Sequence[dict[str, Any]], title: str) -> bytes:
    """Median latency per configuration and target: one panel per kind of figure (measured, emulated, estimated),
    each in its own unit, so a measured microsecond never shares an axis with an emulated nanosecond."""
    kinds = [k for k in _LATENCY_KINDS if any(r["latency"]["kind"] == k for r in records)]
    groups = [[r for r in records if r["latency"]["kind"] == k] for k in kinds]
    heights = [0.3 * len(g) + 0.8 for g in groups] or [1.0]
    fig, axes = plt.subplots(max(len(kinds), 1), 1, figsize=(6.4, sum(heights) + 0.6), dpi=110, squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, kind, group in zip(axes[:, 0], kinds, groups, strict=False):
        unit, factor = _time_unit([r["latency"]["median_ms"] for r in group])
        values = [r["latency"]["median_ms"] * factor for r in group][::-1]
        ax.barh([f"{r['stage']} @ {r['target']}" for r in group][::-1], values, color=_LATENCY_KINDS[kind])
        for y, value in enumerate(values):
            ax.text(value, y, f" {value:.3g} {unit}", va="center", fontsize=6)
        _scale(ax, values, log=True)
        ax.set_xlim(right=max(values) * (30 if ax.get_xscale() == "log" else 1.3))
        ax.set_xlabel(f"median latency [{unit}], {kind}", fontsize=8)
        ax.tick_params(axis="y", labelsize=6)
    axes[0, 0].set_title(f"{title}: latency per target", fontsize=9)
    if not kinds:
        axes[0, 0].text(0.5, 0.5, "no latency figure has a source here", ha="center", va="center")
        axes[0, 0].set_axis_off()
    return _png(fig)
