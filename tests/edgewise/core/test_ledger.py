"""The model-version ledger: versions added and completed by stages, read by their fields."""

from pathlib import Path

import pytest

from edgewise.core.ledger import Ledger


def _resolve(name):
    return Path("/run/m/stage") / name


def test_stages_add_versions_and_complete_them():
    ledger = Ledger()
    ledger.merge({"id": "float32", "kind": "float32", "label": "float32", "files": {"torch": "model.pt"}}, _resolve)
    ledger.merge({"id": "float32", "row": {"model": "m", "stage": "float32", "score": 0.9}}, _resolve)
    ledger.merge({"id": "pruned", "kind": "pruned", "label": "pruned l1 30%", "parent": "float32",
                  "row": {"score": 0.88}, "files": {"torch": "model.pt"}}, _resolve)
    ledger.merge({"id": "folded", "kind": "folded", "label": "pruned l1 30%", "files": {"torch": "folded.pt"}},
                 _resolve)
    assert ledger.working().id == "folded", "a folded model is where quantization starts"
    ledger.merge({"id": "quantized", "kind": "quantized", "label": "q", "row": {"score": 0.87},
                  "files": {"torch": "q.pt", "records": "q.npz"}}, _resolve)
    ledger.merge({"id": "bitstream", "kind": "bitstream", "label": "q + NNCodec", "row": {"score": 0.87},
                  "files": {"bitstream": "model.nnc"}, "runs_as": "quantized"}, _resolve)
    ledger.merge({"id": "pruned", "files": {"onnx": "model-pruned.onnx"}}, _resolve)
    assert ledger["pruned"].files == {"torch": _resolve("model.pt"), "onnx": _resolve("model-pruned.onnx")}
    assert [v.id for v in ledger.deployable()] == ["float32", "pruned", "quantized"]
    assert ledger.final().id == "quantized"
    rows = ledger.rows()
    assert [(r["version"], r["kind"], r["runs_as"]) for r in rows] == [
        ("float32", "float32", "float32"), ("pruned", "pruned", "pruned"), ("quantized", "quantized", "quantized"),
        ("bitstream", "bitstream", "quantized")]
    assert ledger["bitstream"].to_json(Path("/run"))["files"] == {"bitstream": "m/stage/model.nnc"}


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown version kind"):
        Ledger().merge({"id": "x", "kind": "mystery", "label": "x"}, _resolve)
