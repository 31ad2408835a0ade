"""The emulate stage: the quantized MLP through the FantastIC4 integer kernel, and its emulated costs."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from bench.report import Section
from bench.units import si
from edgewise.atomic import write_json
from edgewise.recipe import EmulateConfig
from edgewise.rundir import StageWindow
from edgewise.stages.state import ModelState
from runtime import IntegerMLP
from runtime.onnx_reader import records_from_onnx, rounded_layer


def emulate_stage(state: ModelState, config: EmulateConfig) -> None:
    """Build the integer MLP from the records, check its accuracy in integers, cost it on each FantastIC4 target."""
    data, name = state.data, state.entry.name
    if state.quantized is not None:
        records = list(state.quantized.records.values())
    else:  # a model brought as ONNX: its 4-bit (or, when asked, rounded float) MatMul weights
        records = records_from_onnx(state.onnx_path, round_float_weights=config.round_float_weights)
    # the kernel is rebuilt on reuse too (calibration is deterministic and cheap): the bench stage runs it
    state.integer_mlp = IntegerMLP.from_records(records, data.train.x.numpy(), config.activation_bits, config.acc_bits)

    def emulate(st: StageWindow) -> dict[str, Any]:
        mlp = state.integer_mlp
        predictions = mlp.run(data.test.x.numpy(), "fast").argmax(1)
        accuracy = float((predictions == data.test.y.numpy()).mean())
        costs = {target: mlp.costs(target) for target in config.targets}
        st.metrics.update(kernel_accuracy=accuracy, activation_bits=config.activation_bits,
                          **{f"{t}_{k}": c["total"][k] for t, c in costs.items()
                             for k in ("latency_s", "energy_per_inference_j")})
        st.add_output(write_json(st.path("emulate.json"), {"kernel_accuracy": accuracy, "costs": costs}))
        rounded = records[0].method == "round-float"
        return {"sections": [_section(name, config, accuracy, costs, rounded).to_json()]}

    out = state.stage("emulate", config.model_dump(mode="json"), [state.current_path], emulate)
    state.emulated_path = out.files["emulate.json"]


MLP_LEAVES = (nn.Linear, nn.ReLU, nn.Flatten, nn.Dropout, nn.Identity)


def rounded_mlp(module: nn.Module, calibration: np.ndarray, config: EmulateConfig) -> IntegerMLP | None:
    """The integer kernel for a float MLP (the float32 or pruned stage), its weights rounded to 4 bits per layer.

    This is how the uncompressed network would sit on the accelerator without quantization-aware
    training: the baseline the final 4-bit model's emulated costs are compared with. None when the
    module is not a plain stack of Linear and ReLU layers (the kernel's network class).
    """
    leaves = [m for m in module.modules() if not list(m.children())]
    if not all(isinstance(m, MLP_LEAVES) for m in leaves):
        return None
    records = []
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Linear):
            bias = None if layer.bias is None else layer.bias.detach().numpy().astype(np.float32)
            records.append(rounded_layer(name, layer.weight.detach().numpy(), bias))
    return IntegerMLP.from_records(records, calibration, config.activation_bits, config.acc_bits)


def _section(name: str, config: EmulateConfig, accuracy: float, costs: dict[str, Any], rounded: bool
             ) -> Section:
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
        f"Integer kernel ({config.activation_bits}-bit activations, {config.acc_bits}-bit accumulators): test "
        f"accuracy {accuracy:.4f}, bit-exact across its bins/bitplanes/fast modes. Representations chosen per layer: "
        f"{representations}. Every figure is emulated by the cost model calibrated to the published operating "
        "points (2.45 TOPS at 3.6 W on the XCVU440 FPGA; 20.17 TOPS/W in 22 nm); clock, adders, lanes, bandwidth "
        "and the energy split are assumptions (targets/data/*.yaml)."
        + (" The weights were float in the ONNX file and were rounded to 4 bits per layer without retraining "
           "(a what-if)." if rounded else ""),
    )
