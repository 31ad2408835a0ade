"""The load stage of a model brought as an ONNX file: check it, keep a self-contained copy, score it in ONNX Runtime,
and convert it to torch when a stage will change its weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import torch

from edgewise import export
from edgewise.base.atomic import write_bytes
from edgewise.bench.benchmark import model_inputs
from edgewise.bench.counts import count_onnx
from edgewise.board.errors import UserError
from edgewise.board.session import session_runner
from edgewise.core.ledger import GIVEN, ONNX, TORCH
from edgewise.core.modelio import save_model
from edgewise.core.rundir import StageWindow
from edgewise.onnxin.convert import onnx_to_torch
from edgewise.stages.state import ModelState
from edgewise.stages.table import compresses
from edgewise.zoo.agreement import metric_name
from edgewise.zoo.fit_check import check_fits
from edgewise.zoo.training import score_logits


def load_stage(state: ModelState, given: Path) -> None:
    """Check the ONNX file `given`, keep a copy in the run directory as model.onnx (the given version), score it; when
    the entry prunes, folds or quantizes, its torch conversion (model.pt) joins the given version."""
    entry, data = state.entry, state.data

    def load(st: StageWindow) -> dict[str, Any]:
        try:
            onnx.checker.check_model(str(given))
        except (onnx.checker.ValidationError, OSError) as exc:
            raise UserError(f"{given} is not a valid ONNX model: {str(exc).splitlines()[0]}",
                            "export it again; a truncated or edited file cannot be repaired") from None
        # one self-contained file: weights kept beside the model (external data) are taken in
        copy = write_bytes(st.path("model.onnx"), onnx.load(str(given)).SerializeToString())
        st.add_output(copy)
        run = session_runner(export.open_session(copy))
        check_fits(run, data, given)
        metrics = score_logits(torch.from_numpy(run(data.test.x.numpy())), data.test.y, data.task,
                               data.class_names)
        counts = count_onnx(copy, model_inputs(copy, sample=data.test.x[:1].numpy()))  # one sample, as scored
        proto = onnx.load(str(copy))
        four_bit = any(i.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4) for i in proto.graph.initializer)
        label = "given ONNX (4-bit)" if four_bit else "given ONNX"
        st.metrics.update(metrics, params=counts.parameters, macs=counts.macs, counts=counts.to_json())
        row = {"model": entry.name, "stage": label, "task": data.task,
               "score_name": metric_name(data, metrics["score_name"]),
               "score": metrics["score"], "params": counts.parameters, "macs": counts.macs_counted,
               "size_bytes": copy.stat().st_size}
        files = {ONNX: "model.onnx"}
        if compresses(entry):  # the stages that change weights work on its torch conversion
            module = onnx_to_torch(copy, data.test.x[:4].numpy())
            card = {"source_onnx": str(Path(given).resolve()), "input_shape": list(data.input_shape), "task": data.task,
                    "class_names": list(data.class_names)}
            st.add_output(save_model(module, st.path("model.pt"), card))
            files[TORCH] = "model.pt"
        return {"versions": [{"id": GIVEN, "kind": GIVEN, "label": label, "row": row, "files": files}]}

    state.stage("load", {"onnx": str(given), "torch": compresses(entry)}, [given], load)
