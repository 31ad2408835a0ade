"""The emulated FantastIC4 cost model: executed operations, bytes, cycles, latency and energy per inference.

Calibration: one addition per weight is the scheme's work per dense multiply-accumulate (2 ops),
so the peak dense-equivalent throughput is 2 x adders x clock. The paper's "4 multipliers" cannot
be 4 scalar units at that throughput (15 products per output would bound it far lower), so each is
modelled as a vector unit of `multiplier_lanes` lanes (an assumption). The FPGA's adder count follows
from the published 2.45 TOPS at an assumed clock; its energy per addition from 3.6 W at that peak
(minus an assumed static share), with multiplications and memory bytes weighted by Horowitz's
45 nm ratios. The ASIC reuses the adder count and is calibrated to 20.17 TOPS/W. What the paper
does not give is a parameter in targets/data/*.yaml. Every figure here is labelled emulated.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgewise.board.errors import UserError
from edgewise.runtime.representations import smallest
from edgewise.targets import load_target

CALIBRATION_SHAPE = (2048, 2048)  # a dense 4-bit layer, every weight non-zero, 16 levels in every row


@dataclass(frozen=True)
class Chip:
    """A parameterised FantastIC4 instance: compute, memory, clock and energy per operation."""

    name: str
    adders: int
    multipliers: int  # multiplications per cycle: the 4 published multipliers x their assumed lanes
    clock_hz: float
    bandwidth_bytes_per_cycle: int
    e_add_j: float
    e_mult_j: float
    e_byte_j: float
    static_w: float

    @property
    def peak_tops(self) -> float:
        """Dense-equivalent peak: 2 ops per addition, `adders` additions per cycle."""
        return 2 * self.adders * self.clock_hz / 1e12


def _bins(levels: np.ndarray, block: int | None) -> tuple[int, int]:
    """Non-empty (output, block, level) bins and non-empty (output, block) pairs; without blocks a row is one."""
    outputs, inputs = levels.shape
    size = block or inputs
    blocks = -(-inputs // size)
    padded = np.zeros((outputs, blocks * size), dtype=levels.dtype)
    padded[:, :inputs] = levels
    runs = padded.reshape(outputs, blocks, size)
    bins = sum(int((runs == v).any(axis=2).sum()) for v in np.unique(levels) if v != 0)
    return bins, int((runs != 0).any(axis=2).sum())


def layer_work(levels: np.ndarray, activation_bits: int = 8, batch: int = 1, block: int | None = None
               ) -> dict[str, Any]:
    """Executed work of one layer in the bins scheme: additions, multiplications, bytes read, dense-equivalent ops.
    With block-wise steps every non-empty block of a row is multiplied once more, by its 8-bit integer."""
    outputs, inputs = levels.shape
    nnz = int(np.count_nonzero(levels))
    bins, used_blocks = _bins(levels, block)
    representation, weight_bytes = smallest(levels)
    blocks = 0 if block is None else outputs * -(-inputs // block)
    act_bytes = math.ceil(inputs * activation_bits / 8)
    return {
        "outputs": outputs, "inputs": inputs, "nonzero": nnz, "sparsity": 1 - nnz / levels.size,
        "dense_ops": 2 * outputs * inputs * batch,
        # each non-zero weight adds its input into a bin; a row's bins (over all its blocks) are summed after their
        # multiplication; plus bias
        "additions": batch * (nnz + max(bins - outputs, 0) + outputs),
        # one per non-empty bin, one per non-empty block when blocked, one requantization per output
        "multiplications": batch * (bins + (used_blocks if block else 0) + outputs),
        "representation": representation, "weight_bytes": weight_bytes + blocks,
        "bytes_read": weight_bytes + batch * (act_bytes + 4 * outputs),  # weights once; activations and bias
    }


@functools.lru_cache(maxsize=1)
def calibration_work() -> dict[str, Any]:
    """Work of the calibration layer: dense 4-bit, every weight non-zero, all 15 non-zero levels in every row."""
    rng = np.random.default_rng(0)
    levels = rng.integers(-8, 8, CALIBRATION_SHAPE)
    levels[levels == 0] = 1
    return layer_work(levels)


def _chip_from_profile(profile: dict[str, Any]) -> Chip:
    a = profile["assumptions"]
    published = profile["published"]
    clock = a["clock_mhz"] * 1e6
    work = calibration_work()
    if "throughput_tops" in published:
        # the adders that deliver the published throughput on the calibration layer
        cycles = work["dense_ops"] * clock / (published["throughput_tops"] * 1e12)
        adders = round(work["additions"] / cycles)
    else:
        adders = int(a["adders"])
    multipliers = int(published.get("multipliers", 4)) * int(a["multiplier_lanes"])
    chip = Chip(profile["name"], adders, multipliers, clock, int(a["bandwidth_bytes_per_cycle"]), 0, 0, 0, 0)
    # the calibration layer at peak: its work per second fixes the energy per operation
    seconds = _cycles(chip, work) / clock
    if "power_w" in published:
        power = published["power_w"]
    else:
        power = (work["dense_ops"] / seconds) / (published["efficiency_tops_per_w"] * 1e12)
    ratios = a["energy_ratios"]
    static = a["static_power_fraction"] * power
    weighted = (work["additions"] * ratios["add"] + work["multiplications"] * ratios["mult"]
                + work["bytes_read"] * ratios["byte"])
    unit = (power - static) * seconds / weighted  # joules per unit of the ratios
    return Chip(chip.name, adders, multipliers, clock, chip.bandwidth_bytes_per_cycle, ratios["add"] * unit,
                ratios["mult"] * unit, ratios["byte"] * unit, static)


def chip(target: str | dict[str, Any]) -> Chip:
    """The calibrated chip of a target name (targets/data) or an already loaded profile."""
    profile = load_target(target) if isinstance(target, str) else target
    return _chip_from_profile(profile)


def _cycles(chip: Chip, work: dict[str, Any]) -> int:
    return max(math.ceil(work["additions"] / chip.adders), math.ceil(work["multiplications"] / chip.multipliers),
               math.ceil(work["bytes_read"] / chip.bandwidth_bytes_per_cycle), 1)


def layer_costs(chip: Chip, work: dict[str, Any]) -> dict[str, Any]:
    """Cycles, latency and energy of one layer's work on `chip` (all emulated)."""
    cycles = _cycles(chip, work)
    latency = cycles / chip.clock_hz
    dynamic = (work["additions"] * chip.e_add_j + work["multiplications"] * chip.e_mult_j
               + work["bytes_read"] * chip.e_byte_j)
    return {**work, "cycles": cycles, "latency_s": latency, "energy_j": dynamic + chip.static_w * latency,
            "kind": "emulated"}


def model_costs(mlp: Any, target: str | dict[str, Any] = "fantastic4-asic", batch: int = 1) -> dict[str, Any]:
    """Per-layer and total emulated costs of one batch through an IntegerMLP on a FantastIC4 target (a convolution
    costed per output pixel).

    The chip stores 4-bit weight codes (16 shared values per layer): a layer whose levels need
    more is refused rather than costed as a chip that does not exist.
    """
    for layer in mlp.layers:
        low, high = int(layer.levels.min()), int(layer.levels.max())
        if low < -8 or high > 15 or high - low > 15:
            raise UserError(f"layer {layer.name} has weight levels {low}..{high}; FantastIC4 stores 4-bit codes "
                            "(16 values per layer)", "quantize with bits: 4 or fewer to emulate the chip")
    c = chip(target)
    # a convolution is its weight matrix times one input vector per output pixel: its work per pixel, the weights
    # read once
    layers = [{"layer": layer.name, "positions": positions,
               **layer_costs(c, layer_work(layer.levels, mlp.activation_bits, batch * positions, layer.block))}
              for layer, positions in zip(mlp.layers, mlp.positions(), strict=True)]
    total = {key: sum(layer[key] for layer in layers) for key in
             ("dense_ops", "additions", "multiplications", "bytes_read", "weight_bytes", "cycles", "latency_s",
              "energy_j")}
    dense_adds = sum(layer["outputs"] * layer["inputs"] * layer["positions"] for layer in layers) * batch
    total.update(
        kind="emulated", target=c.name, batch=batch, throughput_per_s=batch / total["latency_s"],
        effective_tops=total["dense_ops"] / total["latency_s"] / 1e12,
        energy_per_inference_j=total["energy_j"] / batch, inferences_per_j=batch / total["energy_j"],
        additions_saved=1 - total["additions"] / max(dense_adds, 1),
        chip={"adders": c.adders, "multipliers": c.multipliers, "clock_mhz": c.clock_hz / 1e6,
              "peak_tops": c.peak_tops, "e_add_pj": c.e_add_j * 1e12, "e_mult_pj": c.e_mult_j * 1e12,
              "e_byte_pj": c.e_byte_j * 1e12, "static_w": c.static_w},
    )
    return {"layers": layers, "total": total}


def operating_point(target: str) -> dict[str, float]:
    """Throughput and power of the calibration workload running back to back (the published operating point)."""
    costs = layer_costs(chip(target), calibration_work())
    power = costs["energy_j"] / costs["latency_s"]
    tops = costs["dense_ops"] / costs["latency_s"] / 1e12
    return {"tops": tops, "power_w": power, "tops_per_w": tops / power}
