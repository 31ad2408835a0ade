from edgewise.report.summary import best_configuration, change, experts_summary, summary_section

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


def test_a_loss_is_said_as_a_loss_and_a_tie_as_no_change():
    """The summary said "0.7x faster (measured)" for a model 1.36x slower, and "1.0x less energy" for no change."""
    rows = [_row("float32", 0.97, 1000), _row("4-bit", 0.965, 100)]
    bench = [_bench("float32", "x86-host", 38.2e-3, 1.0), _bench("4-bit", "x86-host", 51.9e-3, 1.02)]
    (row,) = summary_section(rows, bench).rows
    assert row[5] == "1.4x slower (measured)" and row[6] == "no change (measured)"
    assert change(10.0, 12.0, "smaller", "larger") == "1.2x larger" and change(10.0, 10.4, "a", "b") == "no change"


def test_an_unstable_timing_is_shown_but_not_compared():
    rows = [_row("float32", 0.97, 1000), _row("4-bit", 0.965, 100)]
    bench = [_bench("float32", "x86-host", 38.2e-3, 1.0), _bench("4-bit", "x86-host", 70.7e-3, 1.0)]
    bench[1]["latency"]["unstable"] = ["other processes kept 60% of the CPUs busy (more than 25%)"]
    (row,) = summary_section(rows, bench).rows
    assert row[5] == "70.7 us (measured; not compared: this timing unstable)"


def test_the_shipped_row_takes_size_score_and_latency_from_one_file(tmp_path):
    """The best row paired the NNCodec bitstream's size with the 4-bit ONNX file's latency."""
    rows = [{**_row("float32", 0.97, 1000), "test_samples": 360}, {**_row("4-bit", 0.961, 100), "test_samples": 360},
            _row("4-bit + NNCodec", 0.961, 40)]
    bench = [{**_bench("float32", "x86-host", 2.0, 4.0), "model_file": str(tmp_path / "model-float32.onnx"),
              "file_bytes": 104_325},
             {**_bench("4-bit", "x86-host", 1.0, 2.0), "model_file": str(tmp_path / "model.onnx"),
              "file_bytes": 28_460}]
    (row,) = summary_section(rows, bench).rows
    assert row[1] == "4-bit" and row[2] == "model.onnx: 27.8 KiB (3.7x smaller)"
    assert row[3] == "0.9610 vs 0.9700 (-0.0090 +/- 0.0136 (360 test samples))"


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
