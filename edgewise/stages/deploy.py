"""The deploy stage: the final version's ONNX file bundled for a board, with its probe, hashes and runner."""

from __future__ import annotations

from typing import Any

import torch

from edgewise import export
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
        command = export.trtexec_command("model.onnx", "model.engine", "x", state.data.input_shape, config.precision)
        path = export.bundle(final.files[ONNX], st.path("bundle"), name=name, probe_input=probe.numpy(),
                             probe_output=expected, trtexec=command, bitstream=bitstream, tar=config.tar,
                             preprocessing=preprocessing(state.data), sign_key=config.sign_key)
        checked = export.verify_bundle(path, config.sign_key)
        st.metrics.update(bundle=str(path), **checked)
        if config.to:
            st.metrics["copied_with"] = export.copy_to(path, config.to)
        for file in ([path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())):
            st.add_output(file)
        return {"bundle": str(path.relative_to(state.run.root)), "files": checked["files"]}

    out = state.stage("deploy", config.model_dump(mode="json"), [final.files[ONNX], bitstream], deploy)
    if not out.reused:
        console.print(f"  {name}: bundle {state.run.root / out['bundle']} verified ({out['files']} files)")
