"""The ECQ and ECQx quantizers: a fixed grid per layer, entropy-constrained assignment, relevance-guarded zeros."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgewise.base.grid import blocked_steps, check_block
from edgewise.base.records import QuantizedLayer
from edgewise.board.errors import UserError
from edgewise.compress.arguments import check_finite
from edgewise.compress.layers import output_axis
from edgewise.compress.outputs import tensors_of
from edgewise.compress.quant import LAMBDA_LIMIT
from edgewise.compress.quant.base import Quantizer
from edgewise.compress.quant.ecq import EntropyCost, assign, cluster_pmf, lambda_max
from edgewise.compress.quant.grid import ecq_channel_steps, ecq_grid
from edgewise.compress.quant.model import QuantizedModel, layer_record
from edgewise.compress.quant.rounding import CALIBRATION_SAMPLES, check_rounding, rounded, rounding_named
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.relevance import weight_relevance

RELEVANCE_SMOOTHING = 0.9  # R <- 0.9 R_batch + 0.1 R_previous (ECQx)
AUTO = "auto"
"""lambda chosen by measurement (`ECQQuantizer(lam="auto")`)."""
LAMBDA_LADDER = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
"""The lambdas `auto` tries, in order: each one sparser and cheaper to code than the one before."""
AUTO_SLACK = 0.1
"""How much more output error than the finest assignment (lambda 0) the chosen lambda may cost: 10%."""


@dataclass
class Grid:
    """A layer's fixed ECQ grid and its share of the global lambda.

    One `step` for the layer; one per output channel (`per_channel`: `step` holds them); or block-wise
    (`block` set): `step` is the base per output channel, `multipliers` the signed integers of the
    blocks. `weight_steps` then holds every weight's step (its channel's, times its block's
    multiplier), which the assignment reads. The levels, and so the entropy, are the layer's.
    """

    step: float | np.ndarray
    qmin: int
    qmax: int
    decay: float
    lam_max: float = 0.0
    block: int | None = None
    multipliers: np.ndarray | None = None
    weight_steps: torch.Tensor | None = None
    per_channel: bool = False

    def steps(self) -> float | torch.Tensor:
        """What `assign` takes: the layer's step, or each weight's."""
        return self.step if self.weight_steps is None else self.weight_steps


def init_grids(layers: dict[str, nn.Module], bits: int, block: int | None = None, per_channel: bool = False
               ) -> dict[str, Grid]:
    """The fixed ECQ grid of each layer (per layer, per output channel, or per `block` weights along the input axis)
    and its lambda decay (larger layers are constrained more)."""
    largest = max(m.weight.numel() for m in layers.values())
    grids = {}
    for name, module in layers.items():
        decay = (module.weight.numel() / largest + 0.05) / 1.05
        if block is not None:  # the uniform quantizer's block-wise grid
            base, multipliers, steps, qmin, qmax = blocked_steps(module.weight.detach().cpu().numpy(), bits,
                                                                 output_axis(module), block)
            grids[name] = Grid(base, qmin, qmax, decay, block=block, multipliers=multipliers,
                               weight_steps=torch.from_numpy(np.ascontiguousarray(steps)))
        elif per_channel:
            _, qmin, qmax = ecq_grid(module.weight, bits)
            axis = output_axis(module)
            steps = ecq_channel_steps(module.weight, bits, axis, qmin < 0).to(torch.float32)
            shape = [1] * module.weight.dim()
            shape[axis] = -1
            grids[name] = Grid(steps.numpy(), qmin, qmax, decay, per_channel=True,
                               weight_steps=steps.reshape(shape).expand(module.weight.shape).contiguous())
        else:
            step, qmin, qmax = ecq_grid(module.weight, bits)
            grids[name] = Grid(step, qmin, qmax, decay)
    return grids


def layer_lambda(weight: torch.Tensor, grid: Grid, lam: float) -> float:
    """Absolute lambda of a layer: Lambda x lambda_max of the layer x its size decay."""
    levels = torch.arange(grid.qmin, grid.qmax + 1, dtype=torch.float32)
    w = weight.detach().to(torch.float32)
    info = -torch.log2(cluster_pmf(w, levels, grid.steps(), -grid.qmin)).to(torch.float32)
    grid.lam_max = lambda_max(w, levels, grid.steps(), info, -grid.qmin)
    return lam * grid.lam_max * grid.decay


def ecq_records(weights: dict[str, torch.Tensor], layers: dict[str, nn.Module], grids: dict[str, Grid], lam: float,
                bits: int, relevance: dict[str, torch.Tensor] | None = None, rho: float = 2.0,
                p: float = 0.1) -> tuple[dict[str, QuantizedLayer], dict[str, dict], dict[str, EntropyCost]]:
    """Assign every layer's (full-precision) weights with ECQ, or ECQx where relevances are given; returns the
    records, each assignment's statistics and the cost each layer was assigned with."""
    records, info, costs = {}, {}, {}
    for name, module in layers.items():
        grid = grids[name]
        # assignment runs on the CPU wherever the model trains: the same weights give the same levels on any device
        w = weights[name].detach().cpu()
        # a layer no relevance reaches (a head the scored output does not read) is assigned by ECQ alone
        rel = None if relevance is None or name not in relevance else relevance[name].detach().cpu()
        levels, meta, costs[name] = assign(w, grid.steps(), grid.qmin, grid.qmax, layer_lambda(w, grid, lam), rel,
                                           rho, p)
        method = "ecq" if rel is None else "ecqx"
        records[name] = layer_record(name, module, levels, grid.step, bits, grid.qmin, grid.qmax, method,
                                     grid.per_channel, block=grid.block, multipliers=grid.multipliers)
        info[name] = meta
    return records, info, costs


def normalized_relevance(model: nn.Module, ref: ReferenceSamples, names: set[str],
                         previous: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Weight relevances |R| / max |R| per layer, smoothed with the previous ones (0.9 new + 0.1 old); a recurrent
    matrix gets none (LRP has no rule through gates), and is assigned by ECQ alone."""
    raw = weight_relevance(model, ref, names & {n for n, _ in model.named_modules()})
    out = {}
    for name, r in raw.items():
        r = r / r.max().clamp(min=1e-12)
        out[name] = r if previous is None or name not in previous else \
            RELEVANCE_SMOOTHING * r + (1 - RELEVANCE_SMOOTHING) * previous[name]
    return out


def model_outputs(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Every output tensor of `model` on `x`, flattened per sample and joined (no gradients)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad():
        parts = [torch.cat([t.reshape(len(batch), -1).float().cpu() for t in tensors_of(model(batch.to(device)))], 1)
                 for batch in x.split(batch_size)]
    return torch.cat(parts)


def relative_error(out: torch.Tensor, target: torch.Tensor) -> float:
    """||out - target|| / ||target|| over every value (0 when the target is all zeros and so is the output)."""
    scale = float(target.norm())
    return float((out - target).norm()) / scale if scale else float((out - target).norm())


class ECQQuantizer(Quantizer):
    """Entropy-constrained quantization: argmin_c d(w, w_c) + lambda x I_c on a fixed grid (Wiedemann et al.)."""

    name = "ecq"
    trainable = True

    def __init__(self, lam: float | str = 0.05, block: int | None = None, rounding: str = "auto",
                 per_channel: bool = False) -> None:
        if lam != AUTO:
            check_finite(lam, "lambda", 0.0, LAMBDA_LIMIT, "use e.g. 0.05 (larger: sparser, smaller files), or auto")
        check_block(block)
        check_rounding(rounding)
        if rounding == "learned":
            raise UserError("learned rounding chooses between each weight's two nearest levels, and ECQ assigns "
                            "levels by a rate term", "use rounding compensated (or nearest) with ECQ and ECQx")
        if per_channel and block is not None:
            raise UserError("per_channel and block were both given", "give one: block steps are per channel already")
        self.lam = lam
        self.block = block
        self.rounding = rounding
        self.per_channel = per_channel

    def reads_samples(self) -> bool:
        return super().reads_samples() or self.lam == AUTO

    def relevance(self, model: nn.Module, ref: ReferenceSamples | None, names: set[str]
                  ) -> dict[str, torch.Tensor] | None:
        """The weight relevances that guard the zero cluster (none for plain ECQ)."""
        return None

    def quantize(self, model: nn.Module, layers: dict[str, nn.Module], bits: int, ref: ReferenceSamples | None,
                 train: Callable[..., QuantizedModel] | None) -> QuantizedModel:
        """Post-training assignment on each layer's fixed grid (its rounding, lambda measured when auto); then, when
        `train` is given, quantization-aware training from it (`trained`)."""
        floats = {n: m.weight.detach().clone() for n, m in layers.items()} if train is not None else {}
        grids = init_grids(layers, bits, self.block, self.per_channel)
        if self.lam == AUTO and ref is None:
            raise UserError("lambda auto is chosen by measuring the outputs on reference samples after post-training "
                            "quantization", "give data, or a number (e.g. lambda 0.05)")
        relevance = self.relevance(model, ref, set(layers))  # of the float weights: one for every lambda tried
        if self.lam != AUTO:
            lam, history = self.lam, {}
        else:
            lam, trials = self._measured_lambda(model, layers, grids, bits, ref, relevance)
            history = {"lam": lam, "lambda_search": trials}
        quantized = self._assigned(model, layers, grids, bits, ref, lam, relevance)
        quantized.history.update(history)
        return quantized if train is None else self.trained(model, layers, bits, ref, quantized, floats, train)

    def trained(self, model: nn.Module, layers: dict[str, nn.Module], bits: int, ref: ReferenceSamples | None,
                quantized: QuantizedModel, floats: dict[str, torch.Tensor], train: Callable[..., QuantizedModel]
                ) -> QuantizedModel:
        """Quantization-aware training at the post-training result's lambda, from the float weights `floats` on the
        grids they give; `quantized` (what `model` holds now) is returned where no epoch scores better."""
        start = (copy.deepcopy(model.state_dict()), quantized.records)
        with torch.no_grad():
            for name, module in layers.items():
                module.weight.copy_(floats[name])
        grids = init_grids(layers, bits, self.block, self.per_channel)
        lam = quantized.history.get("lam", self.lam)
        result = train(model, layers, grids, method=self.name, bits=bits, lam=lam, ref=ref, start=start,
                       **self.training_settings())
        result.history.update({k: v for k, v in quantized.history.items() if k in ("lam", "lambda_search")},
                              post_training={k: v for k, v in quantized.history.items() if k in ("rounding",
                                                                                                  "assignment")})
        return result

    def _assigned(self, model: nn.Module, layers: dict[str, nn.Module], grids: dict[str, Grid], bits: int,
                  ref: ReferenceSamples | None, lam: float, relevance: dict[str, torch.Tensor] | None
                  ) -> QuantizedModel:
        weights = {n: m.weight.detach().clone() for n, m in layers.items()}
        records, info, costs = ecq_records(weights, layers, grids, lam, bits, relevance, **self.training_settings())
        rounding = rounding_named(self.rounding, ref is not None)
        rounded(model, layers, records, costs, rounding, ref)
        return QuantizedModel(model, records, self.name, bits, {"assignment": info, "rounding": rounding.name})

    def _measured_lambda(self, model: nn.Module, layers: dict[str, nn.Module], grids: dict[str, Grid], bits: int,
                         ref: ReferenceSamples, relevance: dict[str, torch.Tensor] | None
                         ) -> tuple[float, list[dict[str, float]]]:
        """The largest lambda of LAMBDA_LADDER whose quantized model's outputs on the reference samples are off the
        float model's by at most (1 + AUTO_SLACK) x lambda 0's error, and every lambda tried with its error, entropy
        and sparsity. The ladder stops at the first lambda past the limit (a larger one only removes more)."""
        originals = {n: m.weight.detach().clone() for n, m in layers.items()}
        x = ref.x[:CALIBRATION_SAMPLES]
        target = model_outputs(model, x, ref.batch_size)
        trials, chosen, limit = [], 0.0, math.inf
        for lam in LAMBDA_LADDER:
            summary = self._assigned(model, layers, grids, bits, ref, lam, relevance).summary()
            error = relative_error(model_outputs(model, x, ref.batch_size), target)
            trials.append({"lambda": lam, "output_error": error, "entropy_bits": summary["entropy_bits"],
                           "sparsity": summary["sparsity"]})
            with torch.no_grad():
                for name, module in layers.items():
                    module.weight.copy_(originals[name])
            if lam == 0.0:
                limit = error * (1.0 + AUTO_SLACK)
            elif error > limit:
                break
            chosen = lam
        return chosen, trials

    def training_settings(self) -> dict[str, float]:
        """The relevance settings quantization-aware training re-assigns with (ECQx's rho and p)."""
        return {}


class ECQxQuantizer(ECQQuantizer):
    """ECQ whose zero cluster is guarded by LRP weight relevances: relevant weights pay rho x R^beta to become 0."""

    name = "ecqx"
    needs_reference = True

    def __init__(self, lam: float | str = 0.05, rho: float = 2.0, p: float = 0.1, block: int | None = None,
                 rounding: str = "auto", per_channel: bool = False) -> None:
        super().__init__(lam, block, rounding, per_channel)
        if check_finite(rho, "rho", 0.0, math.inf, "use e.g. 2.0 (the relevance's weight)") == 0.0:
            raise UserError("rho must be above 0, got 0", "use e.g. 2.0 (the relevance's weight)")
        self.rho = rho
        self.p = check_finite(p, "p", 0.0, 1.0, "use e.g. 0.1 (the share of weights the relevance guards)")

    def relevance(self, model: nn.Module, ref: ReferenceSamples | None, names: set[str]
                  ) -> dict[str, torch.Tensor] | None:
        return normalized_relevance(model, ref, names)

    def quantize(self, model: nn.Module, layers: dict[str, nn.Module], bits: int, ref: ReferenceSamples | None,
                 train: Callable[..., QuantizedModel] | None) -> QuantizedModel:
        if ref is None:
            raise UserError("ECQx needs reference samples for its weight relevances", "pass ref=ReferenceSamples(...)")
        return super().quantize(model, layers, bits, ref, train)

    def training_settings(self) -> dict[str, float]:
        return {"rho": self.rho, "p": self.p}
