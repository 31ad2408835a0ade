"""The sweep comparison: final stages, figures of one kind, and the Pareto front over every objective."""

from edgewise.report.sweep import dominates, sweep_rows


def config(name, score, size, latency=None, kind="measured", target="x86-host", error=None):
    rows = [{"model": "m", "stage": "float32", "score": 0.97, "size_bytes": 1000, "score_name": "accuracy",
             "version": "float32", "kind": "float32", "runs_as": "float32"},
            {"model": "m", "stage": "expert a", "score": 1.0, "size_bytes": 1, "score_name": "accuracy",
             "version": "expert-a", "kind": "expert", "runs_as": "expert-a"},
            {"model": "m", "stage": "q", "score": 0.9, "size_bytes": size * 2, "score_name": "accuracy",
             "version": "quantized", "kind": "quantized", "runs_as": "quantized"},
            {"model": "m", "stage": "q + NNCodec", "score": score, "size_bytes": size, "score_name": "accuracy",
             "version": "bitstream", "kind": "bitstream", "runs_as": "quantized"}]
    bench = [] if latency is None else [{"model": "m", "stage": "q", "version": "quantized", "target": target,
                                         "latency": {"kind": kind, "median_ms": latency},
                                         "energy": {"kind": "unavailable", "reason": "no RAPL"}}]
    return {"name": name, "overrides": {}, "rows": rows, "bench": bench, "error": error}


def test_the_bitstream_row_is_compared_with_the_latency_of_the_model_it_decodes_to():
    rows = sweep_rows([config("a", 0.9, 100, latency=0.5)])
    assert rows[0]["stage"] == "q + NNCodec" and rows[0]["latency_ms"] == 0.5 and rows[0]["energy_j"] is None
    assert rows[0]["smaller_than_float32"] == 10.0


def test_pareto_front_over_score_size_and_latency():
    rows = sweep_rows([config("small", 0.90, 100, 1.0), config("good", 0.95, 200, 1.0),
                       config("fast", 0.90, 200, 0.5), config("worse", 0.90, 200, 1.0),
                       config("broken", 0.0, 1, 0.1, error="boom")])
    assert {r["configuration"]: r["pareto"] for r in rows} == {"small": True, "good": True, "fast": True,
                                                               "worse": False}
    assert rows[0]["objectives"] == ["score", "size_bytes", "latency_ms"]


def test_latency_of_different_kinds_is_not_an_objective():
    rows = sweep_rows([config("a", 0.9, 100, 1.0), config("b", 0.9, 200, 0.1, kind="estimated", target="jetson")])
    assert rows[0]["objectives"] == ["score", "size_bytes"]
    assert [r["pareto"] for r in rows] == [True, False]


def test_dominance_needs_one_strict_improvement():
    a = {"score": 0.9, "size_bytes": 10}
    assert not dominates(a, dict(a), [("score", True), ("size_bytes", False)])
    assert dominates(a, {"score": 0.9, "size_bytes": 11}, [("score", True), ("size_bytes", False)])
