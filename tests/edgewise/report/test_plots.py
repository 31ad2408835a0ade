"""Report plots that read: one kind of figure per axis, axes whose tick labels never overprint, no single-point
plots."""

import matplotlib.pyplot as plt
import pytest

from edgewise.report import plots


def _record(stage, target, ms, kind):
    return {"stage": stage, "target": target, "score": 0.9, "latency": {"kind": kind, "median_ms": ms}}


@pytest.fixture
def figures(monkeypatch):
    """The figures the plots make, kept open instead of rendered."""
    made = []
    monkeypatch.setattr(plots, "_png", lambda fig: made.append(fig) or b"png")
    yield made
    for fig in made:
        plt.close(fig)


def test_measured_emulated_and_estimated_latencies_never_share_an_axis(figures):
    """One log axis mixed measured us, emulated ns and estimated board times."""
    records = [_record("float32", "x86-host", 8.2e-3, "measured"), _record("4-bit", "x86-host", 9.3e-3, "measured"),
               _record("float32", "fantastic4-asic", 3e-5, "emulated"),
               _record("float32", "jetson-orin-nx", 0.398, "estimated"),
               _record("float32", "gpu", None, "unavailable")]
    plots.target_bars(records, "m")
    axes = figures[0].axes
    assert [a.get_xlabel() for a in axes] == ["median latency [us], measured", "median latency [ns], emulated",
                                              "median latency [us], estimated"]
    assert [len(a.patches) for a in axes] == [2, 1, 1]


def test_a_narrow_range_is_drawn_on_a_linear_axis_and_a_wide_one_on_a_log_axis(figures):
    """digits-mlp's latency-against-score axis printed its tick labels over each other on a log scale spanning
    7 to 11 us."""
    narrow = [_record(f"v{i}", "x86-host", ms, "measured") for i, ms in enumerate((7e-3, 8e-3, 9e-3, 11e-3))]
    plots.latency_pareto(narrow, "m")
    assert figures[-1].axes[0].get_xscale() == "linear" and figures[-1].axes[0].get_xlabel() == "median latency [us]"
    plots.pareto_scatter([(1.0, 0.9, "a"), (500.0, 0.95, "b")], "size", "score", "t")
    assert figures[-1].axes[0].get_xscale() == "log"
    assert len(figures[-1].axes[0].texts) == 0  # points are named in the legend, never written over each other
    assert [t.get_text() for t in figures[-1].axes[0].get_legend().get_texts()] == ["a", "b", "Pareto front"]


def test_one_point_is_no_plot():
    """rail-net's report drew a plot of its single float32 point."""
    assert plots.pareto_scatter([(1.0, 0.9, "only")], "x", "y", "t") is None
    rows = [{"model": "rail", "kind": "float32", "score_name": "mIoU", "score": 0.86, "size_bytes": 531_000}]
    assert plots.score_vs_size(rows) is None
    rows += [{"model": "mlp", "kind": kind, "score_name": "accuracy", "score": 0.9, "size_bytes": size}
             for kind, size in (("float32", 200_000), ("quantized", 9_000))]
    assert plots.score_vs_size(rows).startswith(b"\x89PNG")


@pytest.mark.parametrize("values, unit", [([8e-3, 9e-3], "us"), ([3e-5], "ns"), ([12.0, 40.0], "ms"),
                                          ([2500.0], "s")])
def test_times_are_shown_in_the_unit_their_median_reads_best(values, unit):
    assert plots._time_unit(values)[0] == unit


def test_panels_share_the_score_axis_and_name_their_stage(figures):
    series = {"l1": ([10, 30], [0.7, 0.5]), "lrp": ([10, 30], [0.9, 0.8])}
    plots.panel_curves({"as cut": series, "tuned": series}, "MACs removed (%)", "accuracy", "net")
    axes = figures[0].axes
    assert [a.get_title() for a in axes] == ["as cut", "tuned"] and [a.get_ylabel() for a in axes] == ["accuracy", ""]
    assert [len(a.get_lines()) for a in axes] == [2, 2] and axes[0].get_shared_y_axes().joined(axes[0], axes[1])
