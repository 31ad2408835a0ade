"""The report's summary: per model, the best configuration and how much smaller, faster and more frugal it is."""

from __future__ import annotations

from typing import Any

from edgewise.core.ledger import CLASS_SPECIFIC
from edgewise.report.section import Section
from edgewise.report.units import binary_bytes, duration, si

TOLERANCE = 0.01  # a configuration within 1 point of the float32 score counts as keeping the accuracy


def best_configuration(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Among one model's versions (class-specific experts excluded), the smallest that keeps the score within
    TOLERANCE of the first (float32), else the best-scoring compressed one (the smallest of equals)."""
    base = rows[0]
    candidates = [r for r in rows[1:] if r["kind"] not in CLASS_SPECIFIC]
    if not candidates:
        return base
    kept = [r for r in candidates if r["score"] >= base["score"] - TOLERANCE]
    if kept:
        return min(kept, key=lambda r: r["size_bytes"])
    return max(candidates, key=lambda r: (r["score"], -r["size_bytes"]))  # equal scores: the smaller


def _ratio(before: float | None, after: float | None) -> str:
    return "" if not before or not after else f"{before / after:.1f}x"


def _compare(float_rec: dict[str, Any] | None, best_rec: dict[str, Any], part: str, key: str, word: str) -> str:
    """'N.Nx <word> (kind)' when both figures are of the same kind, else the best configuration's own figure."""
    figure = best_rec[part]
    if figure["kind"] == "unavailable":
        return "unavailable"
    if float_rec is best_rec:  # nothing was compressed: the figure itself is the news
        shown = duration(figure[key] / 1e3) if key == "median_ms" else si(figure[key], "J")
        return f"{shown} ({figure['kind']})"
    if float_rec is not None and float_rec[part]["kind"] == figure["kind"]:
        return f"{_ratio(float_rec[part][key], figure[key])} {word} ({figure['kind']})"
    unit = "ms" if key == "median_ms" else "J"
    return f"{figure[key]:.3g} {unit} ({figure['kind']}; no float32 figure of that kind)"


def summary_section(rows: list[dict[str, Any]], bench: list[dict[str, Any]]) -> Section:
    """One line per model and target: best configuration, size and score against float32, speed and energy ratios."""
    table = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        base, best = mine[0], best_configuration(mine)
        size = f"{binary_bytes(best['size_bytes'])} ({_ratio(base['size_bytes'], best['size_bytes'])} smaller)"
        common = (model, best["stage"], size, f"{best['score']:.4f} vs {base['score']:.4f}")
        if best is base:
            common = (model, f"{best['stage']} (not compressed)", binary_bytes(best["size_bytes"]),
                      f"{best['score']:.4f}")
        by_target: dict[str, dict[str, dict[str, Any]]] = {}
        for record in bench:
            if record["model"] == model:
                by_target.setdefault(record["target"], {})[record["version"]] = record
        if not by_target:
            table.append((*common, "", "", ""))
        for target, records in by_target.items():
            float_rec, best_rec = records.get(base["runs_as"]), records.get(best["runs_as"])
            if best_rec is None:
                table.append((*common, target, "not benchmarked", "not benchmarked"))
                continue
            table.append((*common, target, _compare(float_rec, best_rec, "latency", "median_ms", "faster"),
                          _compare(float_rec, best_rec, "energy", "gross_j_per_inference", "less energy")))
    return Section(
        "Summary", ("model", "best configuration", "size", "score vs float32", "target", "latency", "energy"), table,
        "Best configuration: the smallest that stays within 1 point of the float32 score (else the best-scoring "
        "compressed one). Faster and less energy: float32 over the best configuration on the same target, compared "
        "only when both figures are of the same kind (measured, emulated or estimated).", lead=True,
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
