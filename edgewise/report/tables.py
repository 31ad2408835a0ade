"""The run's tables as CSV: one writer for results, bench and sweep rows, and the fields each table has."""

from __future__ import annotations

import csv
import io
from typing import Any

from edgewise.report.figures import inputs_text

# new columns go last: scripts that read the earlier columns by position keep working
RESULT_FIELDS = ("model", "stage", "task", "score_name", "score", "params", "macs", "size_bytes", "version", "kind",
                 "runs_as", "onnx_score", "test_samples")
BENCH_FIELDS = ("model", "stage", "target", "score", "size_bytes", "latency_kind", "latency_median_ms",
                "latency_p90_ms", "memory_kind", "peak_rss_bytes", "energy_kind", "energy_j_per_inference",
                "energy_reason", "version", "inputs", "latency_p10_ms", "latency_runs", "latency_unstable",
                "file_bytes", "model_file")


def csv_text(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    """`rows` as CSV text: a header of `fields`, then each row's values of those fields (other keys ignored)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def bench_csv(records: list[dict[str, Any]]) -> str:
    """One CSV row per model version and target, each figure with its kind (measured/emulated/estimated)."""
    flat = [{"model": r["model"], "version": r["version"], "stage": r["stage"], "target": r["target"],
             "score": r["score"], "size_bytes": r["size_bytes"], "latency_kind": r["latency"]["kind"],
             "latency_median_ms": r["latency"].get("median_ms"), "latency_p90_ms": r["latency"].get("p90_ms"),
             "memory_kind": r["memory"]["kind"], "peak_rss_bytes": r["memory"].get("peak_rss_bytes"),
             "energy_kind": r["energy"]["kind"], "energy_j_per_inference": r["energy"].get("gross_j_per_inference"),
             "energy_reason": r["energy"].get("reason", ""), "inputs": inputs_text(r.get("inputs", [])),
             "latency_p10_ms": r["latency"].get("p10_ms"), "latency_runs": r["latency"].get("iterations"),
             "latency_unstable": "; ".join(r["latency"].get("unstable") or []), "file_bytes": r.get("file_bytes"),
             "model_file": r.get("model_file")}
            for r in records]
    return csv_text(flat, BENCH_FIELDS)
