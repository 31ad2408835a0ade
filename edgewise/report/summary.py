"""The report's summary: per model, the best configuration and how much smaller, faster and more frugal it is."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgewise.core.ledger import CLASS_SPECIFIC
from edgewise.report.section import Section
from edgewise.report.units import binary_bytes, duration, si

TOLERANCE = 0.01  # a configuration within 1 point of the float32 score counts as keeping the accuracy
NO_CHANGE = 0.05  # ratios within 5% of 1 are "no change": below what one run on a quiet machine resolves


def best_configuration(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Among one model's versions that run as themselves (class-specific experts and bitstreams, which run as the
    file they code, excluded), the smallest that keeps the score within TOLERANCE of the first (float32), else the
    best-scoring compressed one (the smallest of equals)."""
    base = rows[0]
    candidates = [r for r in rows[1:] if r["kind"] not in CLASS_SPECIFIC and _runs(r) == r.get("version")]
    if not candidates:
        return base
    kept = [r for r in candidates if r["score"] >= base["score"] - TOLERANCE]
    if kept:
        return min(kept, key=lambda r: r["size_bytes"])
    return max(candidates, key=lambda r: (r["score"], -r["size_bytes"]))  # equal scores: the smaller


def change(before: float, after: float, better: str, worse: str) -> str:
    """`after` against `before` in words, for a figure where smaller is better: 'N.Nx <better>' when it shrank,
    'N.Nx <worse>' when it grew (never a ratio below 1), 'no change' within NO_CHANGE."""
    if abs(after / before - 1.0) <= NO_CHANGE:
        return "no change"
    return f"{before / after:.1f}x {better}" if after < before else f"{after / before:.1f}x {worse}"


WORDS = {"latency": ("faster", "slower"), "energy": ("less energy", "more energy")}


def _compare(float_rec: dict[str, Any] | None, best_rec: dict[str, Any], part: str, key: str) -> str:
    """'N.Nx faster/slower (kind)' (or less/more energy, or no change) when both figures are of the same kind and
    stable, else the best configuration's own figure and why it is not compared."""
    figure = best_rec[part]
    if figure["kind"] == "unavailable":
        return "unavailable"
    shown = duration(figure[key] / 1e3) if key == "median_ms" else si(figure[key], "J")
    unstable = [name for name, rec in (("float32", float_rec), ("this", best_rec))
                if rec is not None and rec[part].get("unstable")]
    if unstable:
        return f"{shown} ({figure['kind']}; not compared: {' and '.join(unstable)} timing unstable)"
    if float_rec is best_rec:  # nothing was compressed: the figure itself is the news
        return f"{shown} ({figure['kind']})"
    if float_rec is not None and float_rec[part]["kind"] == figure["kind"]:
        return f"{change(float_rec[part][key], figure[key], *WORDS[part])} ({figure['kind']})"
    return f"{shown} ({figure['kind']}; no float32 figure of that kind)"


def _runs(row: dict[str, Any]) -> str | None:
    """The version whose file a row's version runs as (itself, unless it is a bitstream)."""
    return row.get("runs_as") or row.get("version")


def _shipped(records: list[dict[str, Any]], version: str) -> tuple[str, int] | None:
    """The file a version was benchmarked as (its path) and its bytes on disk, from its bench records."""
    for record in records:
        if record["version"] == version and record.get("model_file"):
            path = Path(record["model_file"])
            size = record.get("file_bytes") or (path.stat().st_size if path.is_file() else None)
            return (str(path), size) if size else None
    return None


def _score_cost(base: dict[str, Any], best: dict[str, Any]) -> str:
    """The score change against float32 with one standard error from the test split's size (two independent
    binomial proportions: an upper bound for scores measured on the same samples)."""
    delta = best["score"] - base["score"]
    n = best.get("test_samples")
    if not n or not 0.0 <= base["score"] <= 1.0 or not 0.0 <= best["score"] <= 1.0:
        return f"{delta:+.4f}"
    error = math.sqrt((base["score"] * (1 - base["score"]) + best["score"] * (1 - best["score"])) / n)
    return f"{delta:+.4f} +/- {error:.4f} ({n} test samples)"


def summary_section(rows: list[dict[str, Any]], bench: list[dict[str, Any]]) -> Section:
    """One line per model and target: the file to ship (the best configuration: its size, score and timings all of
    that one file) against float32, then the speed and energy on each target in words that never hide a loss."""
    table = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        base, best = mine[0], best_configuration(mine)
        records = [b for b in bench if b["model"] == model]
        shipped, float_file = _shipped(records, _runs(best)), _shipped(records, _runs(base))
        if shipped and float_file:
            size = (f"{Path(shipped[0]).name}: {binary_bytes(shipped[1])} "
                    f"({change(float_file[1], shipped[1], 'smaller', 'larger')})")
        else:
            size = (f"{binary_bytes(best['size_bytes'])} "
                    f"({change(base['size_bytes'], best['size_bytes'], 'smaller', 'larger')})")
        common = (model, best["stage"], size, f"{best['score']:.4f} vs {base['score']:.4f} "
                                              f"({_score_cost(base, best)})")
        if best is base:
            common = (model, f"{best['stage']} (not compressed)",
                      binary_bytes(shipped[1] if shipped else best["size_bytes"]), f"{best['score']:.4f}")
        by_target: dict[str, dict[str, dict[str, Any]]] = {}
        for record in records:
            by_target.setdefault(record["target"], {})[record["version"]] = record
        if not by_target:
            table.append((*common, "", "", ""))
        for target, by_version in by_target.items():
            float_rec, best_rec = by_version.get(_runs(base)), by_version.get(_runs(best))
            if best_rec is None:
                table.append((*common, target, "not benchmarked", "not benchmarked"))
                continue
            table.append((*common, target, _compare(float_rec, best_rec, "latency", "median_ms"),
                          _compare(float_rec, best_rec, "energy", "gross_j_per_inference")))
    return Section(
        "Summary", ("model", "ship", "file and size", "score vs float32 (change +/- 1 s.e.)", "target", "latency",
                    "energy"), table,
        "Ship: the smallest configuration that stays within 1 point of the float32 score (else the best-scoring "
        "compressed one); its size, score and timings are of that one file (a bitstream is a way to store or send "
        "it, in the results table). Faster or slower and less or more energy: float32 against it on the same "
        "target, compared only when both figures are of the same kind (measured, emulated or estimated) and "
        f"stable; within {NO_CHANGE:.0%} is no change. The score's +/- is one standard error from the test split's "
        "size.",
        lead=True,
    )


def experts_summary(rows: list[dict[str, Any]]) -> Section | None:
    """One line per class-specific expert or union: its score on its classes against float32's, and the compute
    it saves (MACs per sample against the float32 model's)."""
    table = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        base = mine[0]
        for r in mine:
            if r["kind"] not in CLASS_SPECIFIC:
                continue
            against = f" vs {r['float_class_score']:.4f}" if r.get("float_class_score") is not None else ""
            table.append((model, r["stage"], f"{r['score_name']} {r['score']:.4f}{against}",
                          f"{si(base['params'])} -> {si(r['params'])}", f"{si(base['macs'])} -> {si(r['macs'])}",
                          f"{1 - r['macs'] / base['macs']:.0%} less compute"))
    if not table:
        return None
    return Section(
        "Experts: compute saved", ("model", "expert", "score on its classes vs float32", "parameters",
                                   "MACs / sample", "saving"), table,
        "A class-specific expert keeps the channels its classes need; it is scored on those classes only, against "
        "the float32 model on the same classes.", lead=True)
