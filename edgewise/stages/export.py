"""The export stage: every deployable version as a verified ONNX file (pruned shapes, 4-bit weights), and TensorRT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import torch

from edgewise import export
from edgewise.base.records import QuantizedLayer, load_records
from edgewise.board.compare import relative_difference
from edgewise.board.errors import UserError
from edgewise.board.session import session_runner
from edgewise.core.console import console
from edgewise.core.ledger import ONNX, RECORDS, TORCH, W4A8, Version
from edgewise.core.rundir import StageWindow
from edgewise.export.onnx_export import OnnxFile
from edgewise.export.plain_runtime import SLOWER, write_plain_variant
from edgewise.export.w4a8 import float_nodes_line
from edgewise.report.section import Section
from edgewise.report.units import binary_bytes
from edgewise.stages.export_config import ExportConfig, W4A8Config
from edgewise.stages.state import ModelState
from edgewise.zoo.dataset import Dataset
from edgewise.zoo.training import score_logits

SCORE_GAP = 0.005  # half a point of accuracy or mIoU: a larger gap between torch and the shipped file is flagged


def onnx_name(version: Version, final: Version) -> str:
    """The exported file's name: model.onnx for the final (deployed) version, model-<version>.onnx for the others."""
    return "model.onnx" if version is final else f"model-{version.id}.onnx"


def export_stage(state: ModelState, config: ExportConfig) -> None:
    """Export each deployable version to ONNX and verify it against its torch model, checking the pruned shapes; a
    version given as ONNX is checked as shipped against its exact graph. TensorRT for the final version."""
    versions = state.ledger.deployable()
    final = versions[-1]
    if TORCH in final.files:
        _export_torch(state, config, versions, final)
    else:
        _check_given(state, config, final)


def shipped_score(path: Path, data: Dataset) -> float:
    """The test-split score of the ONNX file as it ships: the fast session (MatMulNBits with int8 activations,
    pre-dequantized 4-bit convolutions), which can differ from the torch model it was exported from."""
    logits = session_runner(export.open_session(path))(data.test.x.numpy())
    return score_logits(torch.from_numpy(logits), data.test.y, data.task, data.class_names)["score"]


def export_verified(module: torch.nn.Module, example: torch.Tensor, probe: torch.Tensor, path: Path, data: Dataset,
                    records: dict[str, QuantizedLayer] | None = None, w4a8: W4A8Config | None = None,
                    dynamic_batch: bool = True) -> tuple[OnnxFile, dict[str, Any]]:
    """The export work of `edgewise export` and the export stage alike: `module` written to `path` as ONNX (4-bit
    weights where `records` are given; with `w4a8`, 8-bit activations too, their ranges calibrated on the training
    split), verified against the module on `probe` and scored as it ships on the test split. Returns the file and
    its record: the verification (export.verify), the 4-bit layers and `onnx_score`."""
    if w4a8 is not None:
        onnx_file = export.to_w4a8(module, example, path, records, data.train.x[: w4a8.samples].numpy(),
                                   w4a8.calibrator, w4a8.activations, dynamic_batch, keep_float=w4a8.keep_float,
                                   tolerance=w4a8.tolerance)
    else:
        onnx_file = export.to_onnx(module, example, path, records, dynamic_batch)
    check = export.verify(path, module, probe, quantized=records is not None)
    return onnx_file, {**check, "quantized_layers": onnx_file.quantized_layers,
                       "onnx_score": shipped_score(path, data)}


def _torch_row(state: ModelState, version: Version) -> dict[str, Any] | None:
    """The version's score row, or (a folded model, which computes what its parent does) its parent's."""
    while version.row is None and version.parent is not None:
        version = state.ledger[version.parent]
    return version.row


def _export_torch(state: ModelState, config: ExportConfig, versions: list[Version], final: Version) -> None:
    probe = state.data.test.x[: config.probe_samples]
    original = state.module(state.base)

    def export_all(st: StageWindow) -> dict[str, Any]:
        rows, exported = [], []
        for version in versions:
            module, filename = state.module(version), onnx_name(version, final)
            records = load_records(version.files[RECORDS])[0] if RECORDS in version.files else None
            onnx_file, check = export_verified(module, probe[:1], probe, st.path(filename), state.data, records,
                                               dynamic_batch=config.dynamic_batch)
            shapes = export.check_shapes(onnx_file.path, module, original)
            st.add_output(onnx_file.path)
            score, row = check.pop("onnx_score"), _torch_row(state, version)
            gap = None if row is None else row["score"] - score
            flagged = gap is not None and abs(gap) > SCORE_GAP
            if flagged:
                console.print(f"  {state.entry.name} {filename}: ONNX Runtime scores {score:.4f}, torch "
                              f"{row['score']:.4f}: a gap of {100 * gap:+.1f} points", markup=False)
            st.metrics[filename] = {**check, "pruned_layers": sum(r["torch"] != r["original"] for r in shapes),
                                    "onnx_score": score, "score_gap": gap}
            rows.append((version.label, filename, binary_bytes(onnx_file.bytes), str(check["opset"]),
                         f"{check['rel_diff']:.1e}", f"{check['fast_rel_diff']:.1e}",
                         str(len(onnx_file.quantized_layers)), "" if row is None else f"{row['score']:.4f}",
                         f"{score:.4f}" + (f" (gap {100 * gap:+.1f} pt)" if flagged else "")))
            updated = {"id": version.id, "files": {ONNX: filename}}
            if version.row is not None:
                updated["row"] = {**version.row, "onnx_score": score}
            exported.append(updated)
        if config.w4a8 is not None and RECORDS in final.files:
            version, row = _export_w4a8(state, config.w4a8, st, final, probe)
            exported.append(version)
            rows.append(row)
        variants = [r for name in list(st.metrics) if name.endswith(".onnx")
                    if (r := _variant_row(st, name, config.plain_variant)) is not None]
        if config.tensorrt is not None:
            st.metrics["tensorrt"] = tensorrt_metrics(state, st, config, st.path(onnx_name(final, final)))
        return {"versions": exported, "sections": [Section(
            f"ONNX export of {state.entry.name}", ("model", "file", "size", "opset", "rel. diff (exact)",
                                                   "rel. diff (fast)", "4-bit layers", "score (torch)",
                                                   "score (ONNX Runtime)"), rows,
            "Verified after writing: ONNX Runtime without graph optimizations against the torch model (relative to "
            "the largest output; quantized files against the fake-quantized torch model), and the session we ship "
            "(MatMulNBits, int8 activations). Initializer shapes match the pruned torch model. Both scores are on "
            f"the test split: torch (fake-quantized where quantized) and the shipped file in ONNX Runtime; a gap "
            f"above {100 * SCORE_GAP:.1f} point is marked. A W4A8 file quantizes the activations too (int8 kernels: "
            "QLinearConv, QGemm): its difference from torch is that quantization's, and its int8 kernels are "
            "checked against its own exact run.",
        ).to_json(), *([] if not variants else [Section(
            f"Plain-runtime variants of {state.entry.name}'s 4-bit files", ("file", "size", "plain variant", "size"),
            variants,
            "The kit's session (edgewise.export.open_session, a bundle's run.py) dequantizes 4-bit convolution, "
            "Gemm and recurrent weights once at load, widens W4A8 weights to INT8 for the int8 kernels and runs "
            "4-bit MatMul layers as MatMulNBits; a plain onnxruntime.InferenceSession dequantizes every 4-bit weight "
            "on every run. The plain variant is the file as the kit's session loads it, 4-bit weights stored "
            "dequantized (so as large as those float layers), for a plain session. `edgewise export` times a file "
            f"in both sessions and writes the variant where a plain one is over {SLOWER:.1f}x slower; here it is "
            "written for every such file (export.plain_variant: never to leave it out).",
        ).to_json()])]}

    inputs = [version.files.get(RECORDS) for version in versions] + [version.files[TORCH] for version in versions]
    state.stage("export", {**config.model_dump(mode="json"), "scored_on": "test"}, inputs, export_all)


def _variant_row(st: StageWindow, filename: str, policy: str) -> tuple[str, ...] | None:
    """Write the exported file `filename`'s plain variant unless `policy` is never (export.plain_runtime; a stage
    writes it for every file the kit's session rewrites: its files do not hang on this machine's speed), record it
    in the file's metrics; its row of the runtime table, None for a file every session loads alike."""
    if policy == "never":
        return None
    variant = write_plain_variant(st.path(filename))
    if variant is None:
        return None
    st.add_output(variant)
    st.metrics[filename]["plain_variant"] = {"file": variant.name, "bytes": variant.stat().st_size}
    return (filename, binary_bytes(st.path(filename).stat().st_size), variant.name,
            binary_bytes(variant.stat().st_size))


W4A8_FILE = "model-w4a8.onnx"


def _export_w4a8(state: ModelState, config: W4A8Config, st: StageWindow, quantized: Version, probe: torch.Tensor
                 ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The quantized version with 8-bit activations (calibrated on the training split) as a W4A8 ONNX file: a new
    version, scored as it ships; returns its ledger values and its row of the export table."""
    module = state.module(quantized)
    records = load_records(quantized.files[RECORDS])[0]
    path = st.path(W4A8_FILE)
    onnx_file, check = export_verified(module, probe[:1], probe, path, state.data, records, config)
    st.add_output(path)
    score = check.pop("onnx_score")
    label = f"{quantized.label}, 8-bit activations"
    gap = quantized.row["score"] - score
    st.metrics[W4A8_FILE] = {**check, "onnx_score": score,
                             "score_gap": gap, **config.model_dump(mode="json"), "float_nodes": onnx_file.float_nodes,
                             "sensitivity": onnx_file.sensitivity, "folded_batchnorms": onnx_file.folded_batchnorms,
                             "corrected_biases": onnx_file.corrected_biases}
    console.print(f"  {state.entry.name} {W4A8_FILE}: ONNX Runtime scores {score:.4f} with {config.activations} "
                  f"activations ({config.calibrator} calibration), {quantized.row['score']:.4f} with float ones",
                  markup=False)
    console.print(f"  {float_nodes_line(onnx_file)}", markup=False)
    # the weights are the quantized version's; what changes is how the activations run, and the score
    row = {**quantized.row, "stage": label, "score": score, "onnx_score": score}
    version = {"id": W4A8, "kind": W4A8, "label": label, "parent": quantized.id, "row": row,
               "files": {ONNX: W4A8_FILE}}
    table_row = (label, W4A8_FILE, binary_bytes(onnx_file.bytes), str(check["opset"]),
                 f"{check['rel_diff']:.1e} (activations)", f"{check['fast_rel_diff']:.1e}",
                 str(len(onnx_file.quantized_layers)), "",
                 f"{score:.4f} (8-bit activations: {100 * (score - quantized.row['score']):+.1f} pt; "
                 f"{len(onnx_file.float_nodes)} nodes kept float)")
    return version, table_row


def _check_given(state: ModelState, config: ExportConfig, given: Version) -> None:
    probe = state.data.test.x[: config.probe_samples].numpy()
    path = given.files[ONNX]

    def verify(st: StageWindow) -> dict[str, Any]:
        exact = session_runner(export.open_session(path, fast=False))(probe)
        fast = session_runner(export.open_session(path))(probe)
        rel = relative_difference(fast, exact)
        opset = max((o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")), default=0)
        st.metrics.update(fast_rel_diff=rel, opset=opset)
        if config.tensorrt is not None:
            st.metrics["tensorrt"] = tensorrt_metrics(state, st, config, path)
        return {"sections": [Section(
            f"ONNX file of {state.entry.name}", ("model", "file", "size", "opset", "rel. diff (fast vs exact)"),
            [(given.label, path.name, binary_bytes(path.stat().st_size), str(opset), f"{rel:.1e}")],
            "The file as given; the session Edgewise ships (graph optimizations on, 4-bit DequantizeLinear folded) "
            "against ONNX Runtime without optimizations, relative to the largest output.",
        ).to_json()]}

    state.stage("export", config.model_dump(mode="json"), [path], verify)


def tensorrt_metrics(state: ModelState, st: StageWindow, config: ExportConfig, onnx_path: Path) -> dict:
    """Build the TensorRT engine where TensorRT and a GPU exist (recorded as an output); else record why not and the
    board's trtexec command."""
    trt = config.tensorrt
    available, reason = export.tensorrt_status()
    input_name = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].name
    command = export.trtexec_command(onnx_path.name, "model.engine", input_name, state.data.input_shape,
                                     trt.precision, trt.max_batch, workspace_mib=trt.workspace_mib)
    if not available:
        if trt.required:
            raise UserError(f"TensorRT is unavailable here: {reason}", "set tensorrt.required: false, or run on "
                            "a machine with TensorRT and a GPU; the bundle's run.py builds the engine on the board")
        if state.run.first_time("tensorrt unavailable"):
            console.print(f"  TensorRT unavailable here ({reason}): the board builds the engine (its trtexec command "
                          "is in manifest.json, each export stage's metrics.tensorrt)", markup=False)
        return {"available": False, "reason": reason, "trtexec": command}
    built = export.to_tensorrt(onnx_path, st.path("model.engine"), state.data.input_shape, trt.precision,
                               trt.max_batch, trt.workspace_mib)
    st.add_output(st.path("model.engine"))
    return {"available": True, **built, "trtexec": command}
