"""The emulate stage: each version that fits the FantastIC4 integer kernel, run in integers and costed per target."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from edgewise.base.atomic import write_json
from edgewise.base.records import QuantizedLayer, load_records
from edgewise.board.errors import UserError
from edgewise.core.ledger import EMULATION, ONNX, RECORDS, TORCH, Version
from edgewise.core.rundir import StageWindow
from edgewise.export.onnx_records import records_from_onnx, rounded_layer
from edgewise.report.section import Section
from edgewise.report.units import si
from edgewise.runtime import IntegerMLP
from edgewise.runtime.kernel import GIVEN_SCALES
from edgewise.stages.emulate_config import EmulateConfig
from edgewise.stages.state import ModelState

MLP_LEAVES = (nn.Linear, nn.ReLU, nn.Flatten, nn.Dropout, nn.Identity)


def rounded_records(module: nn.Module) -> list[QuantizedLayer] | None:
    """A float MLP's Linear layers as 4-bit records, weights rounded per layer (no retraining); None when the module
    is not a plain stack of Linear and ReLU layers (the kernel's network class).

    This is how an uncompressed network would sit on the accelerator without quantization-aware
    training: the baseline a quantized model's emulated costs are compared with.
    """
    leaves = [m for m in module.modules() if not list(m.children())]
    if not all(isinstance(m, MLP_LEAVES) for m in leaves):
        return None
    return [rounded_layer(name, layer.weight.detach().numpy(),
                          None if layer.bias is None else layer.bias.detach().numpy().astype(np.float32))
            for name, layer in module.named_modules() if isinstance(layer, nn.Linear)]


def _records(state: ModelState, version: Version, config: EmulateConfig, own: bool) -> list[QuantizedLayer] | None:
    """The records the kernel runs for `version`: its own 4-bit levels (a CNN's read from its ONNX file, with their
    windows), the ONNX file's (a W4A8 file's with its activation scales), or rounded float weights.

    `own` marks the version the stage emulates for its own sake (the quantized model, or the ONNX
    file given): a version that does not fit the kernel is an error there, and skipped otherwise.
    """
    if RECORDS in version.files:
        records = list(load_records(version.files[RECORDS])[0].values())
        if all(r.kind == "Linear" for r in records):
            return records
        if ONNX not in version.files:
            raise UserError(f"model {state.entry.name}: emulating convolutions needs the exported ONNX file (it holds "
                            "their strides, padding and pooling)", "add an export section to the model")
        return records_from_onnx(version.files[ONNX])
    if TORCH in version.files and (records := rounded_records(state.module(version))) is not None:
        return records
    if ONNX not in version.files:
        return None
    try:  # a float CNN's file, its weights rounded: the baseline; a W4A8 or a given file as it is
        return records_from_onnx(version.files[ONNX], round_float_weights=config.round_float_weights or not own)
    except UserError:
        if own:
            raise
        return None


def emulate_stage(state: ModelState, config: EmulateConfig) -> None:
    """Run the final version through the integer kernel (accuracy in integers) and cost it on every emulated target;
    the other deployable versions too, where they are MLPs (weights rounded to 4 bits), as the baselines."""
    data, name = state.data, state.entry.name
    versions = state.ledger.deployable()
    final = versions[-1]

    def emulate(st: StageWindow) -> dict[str, Any]:
        calibration = data.train.x.numpy()
        results: dict[str, dict[str, Any]] = {}
        for version in versions:
            records = _records(state, version, config, own=version is final)
            if records is None:
                continue
            mlp = IntegerMLP.from_records(records, calibration, config.activation_bits, config.acc_bits,
                                          config.calibrator)
            predictions = mlp.run(data.test.x.numpy(), "fast").argmax(1)
            results[version.id] = {"version": version.id,
                                   "kernel_accuracy": float((predictions == data.test.y.numpy()).mean()),
                                   "rounded": records[0].method == "round-float",
                                   "activation_scales": mlp.meta["calibrator"],
                                   "costs": {target: mlp.costs(target) for target in config.targets}}
            st.add_output(write_json(st.path(f"{version.id}.json"), results[version.id]))
        mine = results[final.id]
        st.metrics.update(kernel_accuracy=mine["kernel_accuracy"], activation_bits=config.activation_bits,
                          **{f"{t}_{k}": c["total"][k] for t, c in mine["costs"].items()
                             for k in ("latency_s", "energy_per_inference_j")})
        return {"versions": [{"id": v, "files": {EMULATION: f"{v}.json"}} for v in results],
                "sections": [_section(name, config, mine).to_json()]}

    inputs = [version.files.get(RECORDS) or version.files.get(TORCH) or version.files.get(ONNX) for version in versions]
    state.stage("emulate", config.model_dump(mode="json"), inputs, emulate)


def _section(name: str, config: EmulateConfig, mine: dict[str, Any]) -> Section:
    accuracy, costs, rounded = mine["kernel_accuracy"], mine["costs"], mine["rounded"]
    scales = mine.get("activation_scales", config.calibrator)
    from_file = scales == GIVEN_SCALES
    rows = []
    for target, c in costs.items():
        t = c["total"]
        rows.append((target, f"{t['latency_s'] * 1e9:,.1f} ns", f"{t['throughput_per_s']:,.0f}/s",
                     f"{t['energy_per_inference_j'] * 1e9:,.2f} nJ", f"{t['inferences_per_j']:,.3g}",
                     f"{t['effective_tops']:.3g}", si(t["additions"]), si(t["multiplications"]),
                     f"{t['additions_saved']:.0%}", f"{t['weight_bytes']:,} B", "emulated"))
    representations = ", ".join(f"{layer['layer']}: {layer['representation']}"
                                for layer in next(iter(costs.values()))["layers"])
    return Section(
        f"FantastIC4 (emulated) for {name}",
        ("target", "latency", "throughput", "energy / inference", "inferences / J", "effective TOPS", "additions",
         "multiplications", "additions saved", "weights on chip", "kind"), rows,
        f"Integer kernel ({config.activation_bits}-bit activations, {config.acc_bits}-bit accumulators; activation "
        f"scales {'of the W4A8 file' if from_file else f'calibrated ({scales}) on the training split'}): test "
        f"accuracy {accuracy:.4f}, bit-exact across its bins/bitplanes/fast modes"
        + (", the W4A8 file's integers" if from_file else "") + ". Representations chosen per layer: "
        f"{representations}. Every figure is emulated by the cost model calibrated to the published operating "
        "points (2.45 TOPS at 3.6 W on the XCVU440 FPGA; 20.17 TOPS/W in 22 nm); clock, adders, lanes, bandwidth "
        "and the energy split are assumptions (targets/data/*.yaml)."
        + (" The weights were float in the ONNX file and were rounded to 4 bits per layer without retraining "
           "(a what-if)." if rounded else ""),
    )
