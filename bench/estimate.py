"""Estimates for boards not at hand: a per-layer latency model of TensorRT on the board's GPU, calibrated.

Each compute layer (from the counts at the shape run) runs at the precision TensorRT would give it
(`precision_of`), taking the longer of its tensor-core time at an achievable fraction of the
GPU's peak and its traffic (activations in and out, weights) at an achievable fraction of the
memory bandwidth, plus a launch cost; the inference adds a host overhead. Peaks come from the
GPU alone (SMs x dense tensor-core MACs per SM and clock x the power mode's clock): the DLAs are
separate engines. The constants are fitted to published measurements (targets/calibration/,
`make bench` topic estimates), and every estimate carries the spread of published / estimated
over those points as its range. Energy is the power mode's module power x the latency.
"""

from __future__ import annotations

from typing import Any

from edgewise.board.errors import UserError

PRECISIONS = ("fp32", "fp16", "int8", "int4")
# what each precision computes on (TensorRT on Ampere and newer runs FP32 engines on TF32 tensor cores) and how many
# bytes an activation and a float weight take
_COMPUTE = {"fp32": "tf32", "fp16": "fp16", "int8": "int8", "int4": "fp16"}
_ACTIVATION_BYTES = {"fp32": 4, "fp16": 2, "int8": 1, "int4": 2}
_GEMM = ("Gemm", "MatMul", "MatMulNBits", "FusedMatMul", "MatMulInteger", "QLinearMatMul")


def precision_of(layer: Any, requested: str | None) -> str:
    """The precision TensorRT runs `layer` at: int8 where the graph carries int8 Q/DQ on its input, int4 for a GEMM
    with 4-bit weights (weight-only), else `requested` (the engine's build flag; fp16 by default)."""
    if layer.int8_activations:
        return "int8"
    if layer.op in _GEMM and layer.weight_bits == 4:
        return "int4"
    return requested or "fp16"


def _mode(profile: dict[str, Any], power_mode: str | None) -> tuple[str, dict[str, Any]]:
    modes = profile.get("power_modes") or {}
    name = power_mode or profile.get("default_power_mode")
    if name not in modes:
        raise UserError(f"{profile['name']} has no power mode {name!r} with a known GPU clock",
                        f"use one of {', '.join(modes) or '(none published)'}")
    return name, modes[name]


def layer_seconds(layer: Any, precision: str, peak_macs: float, bandwidth: float, constants: dict[str, Any]
                  ) -> tuple[float, float]:
    """(compute, traffic) seconds of one layer at `precision` on a GPU of `peak_macs` MAC/s and `bandwidth` B/s."""
    compute = layer.macs / (peak_macs * constants["efficiency"][_COMPUTE[precision]])
    activations = layer.activation_bytes * _ACTIVATION_BYTES[precision] / 4  # counted as the float graph ran
    if layer.weight_bits is None or layer.weight_bits > 8:  # float weights: TensorRT stores them at the precision
        weights = layer.weight_bytes * _ACTIVATION_BYTES[precision] / 4
    else:
        weights = layer.weight_bytes  # 4- and 8-bit weights stay at their stored width
    traffic = (activations + weights) / (bandwidth * constants["memory_efficiency"])
    return compute, traffic


def estimate(profile: dict[str, Any], counts: Any, precision: str | None = None, power_mode: str | None = None,
             include_host: bool = True) -> dict[str, Any]:
    """Latency (and energy) of one inference of the counted model on the board of `profile`, labelled estimated.

    `precision` is the engine's build precision (fp32, fp16, int8; default fp16, as the kit's
    trtexec command builds); layers whose graph says otherwise (int8 Q/DQ, 4-bit GEMM weights) keep
    theirs. `include_host` adds the per-inference host overhead (off for GPU compute time alone).
    """
    if precision is not None and precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    gpu, constants = profile.get("gpu"), profile.get("estimate")
    if not gpu or not constants:
        raise UserError(f"target {profile['name']} has no GPU figures to estimate from", "pick a Jetson board profile")
    if not counts.layers:
        raise UserError("the model has no counted compute layers to estimate", "check the model's counts (unknown: "
                        + ("; ".join(counts.unknown) or "none") + ")")
    mode, figures = _mode(profile, power_mode)
    clock = figures["gpu_mhz"] * 1e6
    bandwidth = figures["memory_gbps"] * 1e9
    total, bound, used = 0.0, {"compute": 0, "memory": 0}, {}
    for layer in counts.layers:
        p = precision_of(layer, precision)
        peak = gpu["sms"] * gpu["tensor_macs_per_sm_per_clock"][_COMPUTE[p]] * clock
        compute, traffic = layer_seconds(layer, p, peak, bandwidth, constants)
        total += max(compute, traffic) + constants["launch_us"] * 1e-6
        bound["compute" if compute >= traffic else "memory"] += 1
        used[p] = used.get(p, 0) + 1
    if include_host:
        total += constants["host_overhead_ms"] * 1e-3
    low, high = constants["ratio_range"]
    power = figures.get("power_w")
    return {
        "kind": "estimated", "method": "per-layer TensorRT latency model (calibrated)", "latency_s": total,
        "range_s": [total * low, total * high], "precisions": used, "layers": len(counts.layers),
        "layers_bound": bound, "power_mode": mode, "gpu_mhz": figures["gpu_mhz"], "power_w": power,
        "energy_j": None if power is None else power * total, "calibrated": constants.get("calibrated", True),
        "source": gpu.get("source", ""), "uncounted": counts.unknown,
    }
