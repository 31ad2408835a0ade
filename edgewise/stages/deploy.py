"""The deploy stage: the final version's ONNX file bundled for a board, with its probe, hashes and runner."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgewise import export
from edgewise.base.records import QuantizedLayer
from edgewise.core.console import console
from edgewise.core.ledger import BITSTREAM, BITSTREAM_FILE, ONNX, TORCH
from edgewise.core.rundir import StageWindow
from edgewise.stages.deploy_config import DeployConfig
from edgewise.stages.state import ModelState
from edgewise.zoo.dataset import Dataset


def preprocessing(data: Dataset) -> dict[str, Any]:
    """What a deploy bundle tells the board about the model's input: range, layout, shape, task, classes."""
    layout = "NCHW" if len(data.input_shape) == 3 else "samples first"
    return {"input_range": [0.0, 1.0], "layout": layout, "input_shape": list(data.input_shape), "task": data.task,
            "classes": list(data.class_names)}


def bundle_for_board(onnx_path: Path, out: Path, name: str, probe: torch.Tensor, expected: np.ndarray, data: Dataset,
                     config: DeployConfig, bitstream: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The deploy work of `edgewise deploy` and the deploy stage alike: `onnx_path` bundled at `out` with its probe
    (`probe` and the output `expected` of it), hashes, runner and the board's trtexec command, verified, and copied
    with scp as `config.to` says. Returns the bundle's path and its verification (export.verify_bundle), with the
    copy's command as `copied_with` when it was copied."""
    command = export.trtexec_command("model.onnx", "model.engine", "x", data.input_shape, config.precision)
    path = export.bundle(onnx_path, out, name=name, probe_input=probe.numpy(), probe_output=expected, trtexec=command,
                         bitstream=bitstream, tar=config.tar, preprocessing=preprocessing(data),
                         sign_key=config.sign_key)
    checked = export.verify_bundle(path, config.sign_key)
    if config.to:
        checked["copied_with"] = export.copy_to(path, config.to)
    return path, checked


def deploy_module(module: torch.nn.Module, out: Path, name: str, data: Dataset, config: DeployConfig,
                  records: dict[str, QuantizedLayer] | None = None, bitstream: Path | None = None
                  ) -> tuple[Path, dict[str, Any]]:
    """A torch model deployed as `edgewise deploy` does it: exported to ONNX (4-bit weights where `records` are given),
    verified against the module on the test split's first samples, and bundled with their outputs as its probe
    (bundle_for_board)."""
    probe = data.test.x[:4]
    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        export.to_onnx(module, probe[:2], onnx_path, records)
        export.verify(onnx_path, module, probe, quantized=records is not None)
        with torch.no_grad():
            expected = module.eval()(probe).numpy()
        return bundle_for_board(onnx_path, out, name, probe, expected, data, config, bitstream)


def deploy_stage(state: ModelState, config: DeployConfig) -> None:
    """Bundle the final version's ONNX file (and its NNCodec bitstream, if coded) with its probe, hashes and runner;
    optionally copy it to a board."""
    name = state.entry.name
    final = state.ledger.final()
    bitstream = next((v.files[BITSTREAM_FILE] for v in state.ledger.of_kind(BITSTREAM)), None)
    probe = state.data.test.x[:4]
    if TORCH in final.files:
        with torch.no_grad():
            expected = state.module(final).eval()(probe).numpy()
    else:  # a W4A8 file has no torch model that computes its integers: the output is the file's, as it ships
        session = export.open_session(final.files[ONNX])
        expected = session.run(None, {session.get_inputs()[0].name: probe.numpy()})[0]

    def deploy(st: StageWindow) -> dict[str, Any]:
        path, checked = bundle_for_board(final.files[ONNX], st.path("bundle"), name, probe, expected, state.data,
                                         config, bitstream)
        st.metrics.update(bundle=str(path), **checked)
        for file in ([path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())):
            st.add_output(file)
        return {"bundle": str(path.relative_to(state.run.root)), "files": checked["files"]}

    out = state.stage("deploy", config.model_dump(mode="json"), [final.files[ONNX], bitstream], deploy)
    if not out.reused:
        console.print(f"  {name}: bundle {state.run.root / out['bundle']} verified ({out['files']} files)")
