"""The export and deploy stages: verified ONNX files (pruned shapes, 4-bit weights), TensorRT, board bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import torch

import export
from bench.report import Section
from bench.units import binary_bytes
from edgewise.console import console
from edgewise.errors import UserError
from edgewise.recipe import DeployConfig, ExportConfig
from edgewise.rundir import StageWindow
from edgewise.stages.state import ModelState, preprocessing


def export_stage(state: ModelState, config: ExportConfig) -> None:
    """Export the float and the compressed model to ONNX, verify both against torch, check the pruned shapes."""
    name, data = state.entry.name, state.data
    probe = data.test.x[: config.probe_samples]
    targets = [(state.rows[0], state.model, None, "model-float32.onnx", state.model_path)]
    if state.pruned is not None and state.pruned[1] is not state.current:
        targets.append((*state.pruned, None, "model-pruned.onnx", state.pruned_path))
    if state.current is not state.model:
        records = state.quantized.records if state.quantized is not None else None
        row = next(r for r in reversed(state.rows) if r["stage"] == state.current_label)
        targets.append((row, state.current, records, "model.onnx", state.current_path))

    def export_all(st: StageWindow) -> dict[str, Any]:
        rows = []
        for row, module, records, filename, _ in targets:
            onnx_file = export.to_onnx(module, probe[:1], st.path(filename), records, config.dynamic_batch)
            check = export.verify(onnx_file.path, module, probe, quantized=records is not None)
            shapes = export.check_shapes(onnx_file.path, module, state.model)
            st.add_output(onnx_file.path)
            st.metrics[filename] = {**check, "quantized_layers": onnx_file.quantized_layers,
                                    "pruned_layers": sum(r["torch"] != r["original"] for r in shapes)}
            rows.append((row["stage"], filename, binary_bytes(onnx_file.bytes), str(check["opset"]),
                         f"{check['rel_diff']:.1e}", f"{check['fast_rel_diff']:.1e}",
                         str(len(onnx_file.quantized_layers))))
        if config.tensorrt is not None:
            st.metrics["tensorrt"] = tensorrt_metrics(state, config, st.path(targets[-1][3]))
        return {"sections": [Section(
            f"ONNX export of {name}", ("model", "file", "size", "opset", "rel. diff (exact)", "rel. diff (fast)",
                                       "4-bit layers"), rows,
            "Verified after writing: ONNX Runtime without graph optimizations against the torch model (relative to "
            "the largest output; quantized files against the fake-quantized torch model), and the session we ship "
            "(MatMulNBits, int8 activations). Initializer shapes match the pruned torch model.",
        ).to_json()]}

    out = state.stage("export", config.model_dump(mode="json"), [t[4] for t in targets], export_all)
    state.exported = [(row, out.files[filename], module) for row, module, _, filename, _ in targets]
    state.onnx_path = state.exported[-1][1]


def tensorrt_metrics(state: ModelState, config: ExportConfig, onnx_path: Path) -> dict:
    """Build the TensorRT engine where TensorRT and a GPU exist; else record why not and the board's command."""
    trt = config.tensorrt
    available, reason = export.tensorrt_status()
    input_name = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].name
    command = export.trtexec_command(onnx_path.name, "model.engine", input_name, state.data.input_shape,
                                     trt.precision, trt.max_batch, workspace_mib=trt.workspace_mib)
    if not available:
        if trt.required:
            raise UserError(f"TensorRT is unavailable here: {reason}", "set tensorrt.required: false, or run on "
                            "a machine with TensorRT and a GPU; the bundle's run.py builds the engine on the board")
        console.print(f"  TensorRT unavailable here ({reason}); on the board: {' '.join(command)}", markup=False)
        return {"available": False, "reason": reason, "trtexec": command}
    built = export.to_tensorrt(onnx_path, onnx_path.with_suffix(".engine"), state.data.input_shape,
                               trt.precision, trt.max_batch, trt.workspace_mib)
    return {"available": True, **built, "trtexec": command}


def deploy_stage(state: ModelState, config: DeployConfig) -> None:
    """Bundle the exported compressed model with its probe, hashes and runner; optionally copy it to a board."""
    name = state.entry.name
    probe = state.data.test.x[:4]
    with torch.no_grad():
        expected = state.current.eval()(probe).numpy()

    def deploy(st: StageWindow) -> dict[str, Any]:
        command = export.trtexec_command("model.onnx", "model.engine", "x", state.data.input_shape, config.precision)
        path = export.bundle(state.onnx_path, st.path("bundle"), name=name, probe_input=probe.numpy(),
                             probe_output=expected, trtexec=command, bitstream=state.bitstream_path, tar=config.tar,
                             preprocessing=preprocessing(state.data))
        checked = export.verify_bundle(path)
        st.metrics.update(bundle=str(path), **checked)
        if config.to:
            st.metrics["copied_with"] = export.copy_to(path, config.to)
        for file in ([path] if path.is_file() else sorted(path.iterdir())):
            st.add_output(file)
        return {"bundle": str(path.relative_to(state.run.root)), "files": checked["files"]}

    out = state.stage("deploy", config.model_dump(mode="json"), [state.onnx_path, state.bitstream_path], deploy)
    if not out.reused:
        console.print(f"  {name}: bundle {state.run.root / out['bundle']} verified ({out['files']} files)")
