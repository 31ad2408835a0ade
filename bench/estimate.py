"""Estimates for boards we do not have: a roofline latency from published peak compute and bandwidth."""

from __future__ import annotations

from typing import Any

from edgewise.base.errors import UserError


def roofline(profile: dict[str, Any], macs: int, weight_bytes: int, activation_bytes: int = 0,
             power_mode: str | None = None) -> dict[str, Any]:
    """Lower-bound latency max(ops / peak compute, bytes / bandwidth) and energy = power mode x latency.

    Peak compute is the profile's dense INT8 figure where published (sparse figures are halved),
    else its FP16 figure. Real kernels reach a fraction of the roofline, so this is the best case,
    and every figure is labelled estimated, with the published source.
    """
    published = profile.get("published", {})
    if published.get("peak_int8_tops_dense"):
        peak, precision = published["peak_int8_tops_dense"] * 1e12, "int8 dense"
    elif published.get("peak_int8_tops"):
        peak, precision = published["peak_int8_tops"] * 1e12, "int8"
    elif published.get("peak_fp16_tflops"):
        peak, precision = published["peak_fp16_tflops"] * 1e12, "fp16"
    else:
        raise UserError(f"target {profile['name']} publishes no peak compute", "pick a board profile with figures")
    bandwidth = published["memory_bandwidth_gbps"] * 1e9
    modes = published.get("power_modes_w", {})
    if power_mode is None:
        power_mode = max(modes, key=modes.get) if modes else None
    if power_mode is not None and power_mode not in modes:
        raise UserError(f"{profile['name']} has no power mode {power_mode!r}", f"use one of {', '.join(modes)}")
    compute_s = 2 * macs / peak
    memory_s = (weight_bytes + activation_bytes) / bandwidth
    latency = max(compute_s, memory_s)
    power = modes.get(power_mode) if power_mode else None
    return {
        "kind": "estimated", "method": "roofline lower bound", "latency_s": latency,
        "bound": "compute" if compute_s >= memory_s else "memory", "compute_s": compute_s, "memory_s": memory_s,
        "precision": precision, "power_mode": power_mode, "power_w": power,
        "energy_j": None if power is None else power * latency, "source": published.get("source", ""),
    }
