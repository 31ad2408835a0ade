from edgewise.report.summary import best_configuration, experts_summary, summary_section

# label -> (version id, kind, the version it runs as): what the ledger gives every row
VERSIONS = {"float32": ("float32", "float32", "float32"), "given ONNX": ("given", "given", "given"),
            "pruned": ("pruned", "pruned", "pruned"), "p": ("pruned", "pruned", "pruned"),
            "4-bit": ("quantized", "quantized", "quantized"), "q": ("quantized", "quantized", "quantized"),
            "nnc": ("bitstream", "bitstream", "quantized"), "4-bit + NNCodec": ("bitstream", "bitstream", "quantized"),
            "expert rail": ("expert-rail", "expert", "expert-rail"),
            "expert rail (lrp 50%)": ("expert-rail", "expert", "expert-rail")}


def _row(stage, score, size):
    version, kind, runs_as = VERSIONS[stage]
    return {"model": "m", "stage": stage, "score": score, "size_bytes": size, "version": version, "kind": kind,
            "runs_as": runs_as}


def _bench(stage, target, ms, joules, kind="measured"):
    return {"model": "m", "stage": stage, "version": VERSIONS[stage][0], "target": target,
            "latency": {"kind": kind, "median_ms": ms, "p90_ms": ms},
            "energy": {"kind": kind, "gross_j_per_inference": joules}}


def test_best_is_the_smallest_within_one_point():
    rows = [_row("float32", 0.97, 1000), _row("pruned", 0.965, 400), _row("4-bit", 0.962, 100),
            _row("nnc", 0.95, 60), _row("expert rail", 0.99, 10)]
    assert best_configuration(rows)["stage"] == "4-bit"
    assert best_configuration([rows[0], _row("q", 0.5, 10), _row("p", 0.6, 20)])["stage"] == "p"
    assert best_configuration([rows[0], _row("p", 0.6, 20), _row("q", 0.6, 10)])["stage"] == "q"


def test_summary_compares_only_figures_of_the_same_kind():
    rows = [_row("float32", 0.97, 1000), _row("4-bit", 0.965, 100), _row("4-bit + NNCodec", 0.965, 100)]
    bench = [_bench("float32", "x86-host", 2.0, 4.0), _bench("4-bit", "x86-host", 0.5, 1.0),
             _bench("4-bit", "fantastic4-asic", 1e-5, 1e-9, "emulated")]
    section = summary_section(rows, bench)
    host, asic = section.rows
    assert host[2] == "100 B (10.0x smaller)" and host[5] == "4.0x faster (measured)"
    assert host[6] == "4.0x less energy (measured)"
    assert "no float32 figure of that kind" in asic[5] and "emulated" in asic[5]


def test_an_uncompressed_model_shows_its_own_figures_not_ratios():
    rows = [_row("given ONNX", 0.9, 1000)]
    table = summary_section(rows, [_bench("given ONNX", "x86-host", 0.5, 2e-3)]).rows
    assert table == [("m", "given ONNX (not compressed)", "1000 B", "0.9000", "x86-host", "500 us (measured)",
                      "2 mJ (measured)")]


def test_experts_summary_states_the_compute_saved():
    base = {**_row("float32", 0.8, 1000), "params": 100, "macs": 4000, "score_name": "mIoU"}
    expert = {**_row("expert rail (lrp 50%)", 0.5, 300), "params": 30, "macs": 1000, "score_name": "IoU[rail]",
              "float_class_score": 0.55}
    section = experts_summary([base, expert])
    assert section.lead and section.rows == [("m", "expert rail (lrp 50%)", "IoU[rail] 0.5000 vs 0.5500", "100 -> 30",
                                              "4 k -> 1 k", "75% less compute")]
    assert experts_summary([base]) is None
