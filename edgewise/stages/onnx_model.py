"""The stages of a model brought as an ONNX file: load (check, keep, score) and export (verify, TensorRT)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch

import export
from bench.onnx_stats import onnx_stats
from bench.report import Section
from bench.units import binary_bytes
from edgewise.atomic import write_bytes
from edgewise.errors import UserError
from edgewise.recipe import ExportConfig
from edgewise.rundir import StageWindow
from edgewise.stages.export import tensorrt_metrics
from edgewise.stages.state import ModelState
from edgewise.zoo.fit_check import check_fits
from edgewise.zoo.training import score_logits

BATCH = 256


def _runner(session: Any) -> Any:
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.concatenate([session.run(None, {name: x[i:i + BATCH].astype(np.float32)})[0]
                               for i in range(0, len(x), BATCH)])

    return run


def onnx_load_stage(state: ModelState) -> None:
    """Check the ONNX file, keep a copy in the run directory as model.onnx, and score it with ONNX Runtime."""
    entry, data = state.entry, state.data

    def load(st: StageWindow) -> dict[str, Any]:
        try:
            onnx.checker.check_model(str(entry.onnx))
        except (onnx.checker.ValidationError, OSError) as exc:
            raise UserError(f"{entry.onnx} is not a valid ONNX model: {str(exc).splitlines()[0]}",
                            "export it again; a truncated or edited file cannot be repaired") from None
        # one self-contained file: weights kept beside the model (external data) are taken in
        path = write_bytes(st.path("model.onnx"), onnx.load(str(entry.onnx)).SerializeToString())
        st.add_output(path)
        run = _runner(export.open_session(path))
        check_fits(run, data, entry.onnx)
        metrics = score_logits(torch.from_numpy(run(data.test.x.numpy())), data.test.y, data.task,
                               data.class_names)
        stats = onnx_stats(path)
        proto = onnx.load(str(path))
        params = sum(int(np.prod(i.dims)) for i in proto.graph.initializer)
        four_bit = any(i.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4) for i in proto.graph.initializer)
        label = "given ONNX (4-bit)" if four_bit else "given ONNX"
        st.metrics.update(metrics, params=params, macs=stats["macs"])
        row = {"model": entry.name, "stage": label, "task": data.task, "score_name": metrics["score_name"],
               "score": metrics["score"], "params": params, "macs": stats["macs"], "size_bytes": path.stat().st_size}
        return {"rows": [row]}

    out = state.stage("load", {"onnx": str(entry.onnx)}, [entry.onnx], load)
    state.onnx_path = out.files["model.onnx"]
    state.current_path = state.onnx_path
    state.float_score = out["rows"][0]["score"]
    state.exported = [(out["rows"][0], state.onnx_path, None)]


def onnx_export_stage(state: ModelState, config: ExportConfig) -> None:
    """For a given ONNX file: compare the session Edgewise ships with an unoptimized one, and build or describe the
    TensorRT engine."""
    probe = state.data.test.x[: config.probe_samples].numpy()

    def verify(st: StageWindow) -> dict[str, Any]:
        exact = _runner(export.open_session(state.onnx_path, fast=False))(probe)
        fast = _runner(export.open_session(state.onnx_path))(probe)
        rel = float(np.abs(fast - exact).max() / max(np.abs(exact).max(), 1e-12))
        opset = max((o.version for o in onnx.load(str(state.onnx_path)).opset_import if o.domain in ("", "ai.onnx")),
                    default=0)
        st.metrics.update(fast_rel_diff=rel, opset=opset)
        if config.tensorrt is not None:
            st.metrics["tensorrt"] = tensorrt_metrics(state, config, state.onnx_path)
        row = state.exported[0][0]
        return {"sections": [Section(
            f"ONNX file of {state.entry.name}", ("model", "file", "size", "opset", "rel. diff (fast vs exact)"),
            [(row["stage"], state.onnx_path.name, binary_bytes(state.onnx_path.stat().st_size), str(opset),
              f"{rel:.1e}")],
            "The file as given; the session Edgewise ships (graph optimizations on, 4-bit DequantizeLinear folded) "
            "against ONNX Runtime without optimizations, relative to the largest output.",
        ).to_json()]}

    state.stage("export", config.model_dump(mode="json"), [state.onnx_path], verify)
