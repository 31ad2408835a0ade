"""Report plots rendered to PNG bytes with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def score_vs_size(rows: Sequence[dict[str, Any]]) -> bytes:
    """Scatter of each model stage: model size (log scale) against its score (accuracy or mIoU)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        ax.plot([r["size_bytes"] / 1024 for r in mine], [r["score"] for r in mine], "o-", label=model)
        for r in mine:
            ax.annotate(r["stage"], (r["size_bytes"] / 1024, r["score"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("model size [KiB]")
    ax.set_ylabel("score (accuracy or mIoU)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def rate_curves(curves: dict[str, Any], score_name: str, title: str) -> bytes:
    """Score against pruning rate, one line per criterion, its area under the curve in the legend."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    for criterion, curve in curves.items():
        points = curve["points"]
        ax.plot([p["rate"] for p in points], [p["score"] for p in points], "o-", markersize=3,
                label=f"{criterion} (AUC {curve['auc']:.3f})")
    ax.set_xlabel("pruning rate (fraction of channels removed)")
    ax.set_ylabel(score_name)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


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
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
