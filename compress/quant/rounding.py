"""Rounding onto a fixed grid, as plug-ins a quantizer combines its grid with: to nearest, or error-compensated.

A grid (uniform per layer, per channel or per block; ECQ's, with its rate term and ECQx's
relevance guard) says which level each weight value takes: an `Assigner`. A rounding decides
which values it is asked about. `nearest` asks once per weight, about the float weight.
`compensated` is GPTQ's (Frantar et al., 2022; OBQ before it): the columns of a layer's weight
(its inputs) are assigned in order, and each column's rounding error is pushed onto the columns not
yet assigned through the inverse of H = X^T X, the second moment of the layer's inputs on
calibration samples (dampened by `damp` x mean diag H), so that the layer's OUTPUT on those inputs
moves as little as the grid allows. With ECQ's assigner every column keeps paying the rate term
(and ECQx's relevance term): entropy-constrained compensated rounding. `learned` is AdaRound's,
on the same statistics, for the grids that round to nearest.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from edgewise.base.records import QuantizedLayer
from edgewise.board.errors import UserError
from edgewise.compress.quant.input_moments import observed, with_input_moments
from edgewise.compress.quant.model import write_back
from edgewise.compress.reference import ReferenceSamples


class Assigner(Protocol):
    """A grid's choice of levels: `steps` holds each weight's step as (rows, columns) of the 2-D weight, and a call
    gives the levels of `values` for the weights at `rows` x `columns`."""

    steps: torch.Tensor

    def __call__(self, values: torch.Tensor, rows: slice, columns: slice) -> torch.Tensor:
        """Integer levels (int64) of `values`, a (rows, columns) block of the weight."""


class Rounding(abc.ABC):
    """How a grid's levels are found for a layer's weight: see the module."""

    name: ClassVar[str]
    needs_inputs: ClassVar[bool] = False

    @abc.abstractmethod
    def levels(self, weight: torch.Tensor, assigner: Assigner, hessian: torch.Tensor | None) -> torch.Tensor:
        """Levels (int64, the weight's 2-D shape: outputs x inputs) of `weight`; `hessian` is X^T X of the layer's
        inputs, (inputs, inputs), or (groups, inputs per group, ...) for a grouped convolution; None when the
        layer's inputs were not observed."""


def per_group(weight: torch.Tensor, hessian: torch.Tensor, solve: Callable[[torch.Tensor, torch.Tensor, slice],
                                                                             torch.Tensor]) -> torch.Tensor:
    """Levels of `weight` found group by group: a grouped convolution's `hessian` is (groups, inputs per group,
    ...), each group's rows solved with its own (`solve(rows' weight in float64, its hessian in float64, rows)`)."""
    hessians = hessian if hessian.dim() == 3 else hessian[None]
    rows = weight.shape[0] // len(hessians)
    out = torch.empty(weight.shape, dtype=torch.int64)
    for g, h in enumerate(hessians):
        span = slice(g * rows, (g + 1) * rows)
        out[span] = solve(weight[span].to(torch.float64), h.to(torch.float64), span)
    return out


def output_error(weight: torch.Tensor, quantized: torch.Tensor, hessian: torch.Tensor) -> float:
    """tr((Q - W) H (Q - W)^T): the squared change of the layer's outputs on the inputs whose second moment is
    `hessian`, for the weight `weight` quantized to `quantized` (both (rows, inputs))."""
    delta = (quantized - weight).to(torch.float64)
    return float(((delta @ hessian.to(torch.float64)) * delta).sum())


class NearestRounding(Rounding):
    """Each weight on its own: the assigner's choice for the float weight (round to nearest on a uniform grid)."""

    name = "nearest"

    def levels(self, weight: torch.Tensor, assigner: Assigner, hessian: torch.Tensor | None) -> torch.Tensor:
        return assigner(weight, slice(None), slice(None))


class CompensatedRounding(Rounding):
    """GPTQ's error-compensated rounding over the layer's input statistics (see the module); `columns` at a time
    the update is applied lazily, as GPTQ does, which gives the same result faster."""

    name = "compensated"
    needs_inputs = True

    def __init__(self, damp: float = 0.01, columns: int = 128) -> None:
        if not 0.0 < damp <= 1.0:
            raise UserError(f"dampening {damp} is outside (0, 1]", "use e.g. 0.01 (GPTQ's default)")
        self.damp, self.columns = damp, columns

    def levels(self, weight: torch.Tensor, assigner: Assigner, hessian: torch.Tensor | None) -> torch.Tensor:
        if hessian is None:
            return assigner(weight, slice(None), slice(None))
        return per_group(weight, hessian, lambda w, h, rows: self._group(w, assigner, h, rows))

    def _group(self, w: torch.Tensor, assigner: Assigner, h: torch.Tensor, rows: slice) -> torch.Tensor:
        inputs = w.shape[1]
        h = h.clone()
        dead = torch.diagonal(h) <= 0
        h[dead, dead] = 1.0  # an input that never fires: its column is rounded alone
        h += torch.eye(inputs, dtype=h.dtype) * self.damp * float(torch.diagonal(h).mean())
        try:
            inverse = torch.cholesky_inverse(torch.linalg.cholesky(h))
            upper = torch.linalg.cholesky(inverse, upper=True)
        except RuntimeError:  # not positive definite even dampened: nothing to compensate with
            return assigner(w.float(), rows, slice(None))
        steps = assigner.steps[rows].to(torch.float64)
        levels = torch.empty(w.shape, dtype=torch.int64)
        for start in range(0, inputs, self.columns):
            stop = min(start + self.columns, inputs)
            block, errors = w[:, start:stop].clone(), torch.zeros(w.shape[0], stop - start, dtype=w.dtype)
            u = upper[start:stop, start:stop]
            for i in range(stop - start):
                column = start + i
                chosen = assigner(block[:, i:i + 1].float(), rows, slice(column, column + 1))[:, 0]
                levels[:, column] = chosen
                error = (block[:, i] - chosen.to(w.dtype) * steps[:, column]) / u[i, i]
                block[:, i:] -= error[:, None] * u[i, i:][None, :]
                errors[:, i] = error
            w[:, stop:] -= errors @ upper[start:stop, stop:]
        return levels


class LearnedRounding(Rounding):
    """AdaRound's learned rounding (Nagel et al., 2020) on the layer's input statistics: each weight goes down or up
    to one of its two nearest levels, as a soft choice h = clip(sigmoid(V) x 1.2 - 0.1, 0, 1) that Adam moves to
    make tr(dW H dW^T), the layer's output change on the calibration inputs, small, while a regulariser
    sum(1 - |2h - 1|^beta), with beta annealed from 20 to 2 after a fifth of the `iterations`, pushes every h to 0
    or 1. Only for grids that round to nearest (an Assigner whose `nearest` is true, with its level range qmin and
    qmax: uniform's); the result is kept only where its output change is below round-to-nearest's."""

    name = "learned"
    needs_inputs = True

    def __init__(self, iterations: int = 500, lr: float = 0.01, regularisation: float = 0.01, damp: float = 0.01
                 ) -> None:
        self.iterations, self.lr, self.regularisation, self.damp = iterations, lr, regularisation, damp

    def levels(self, weight: torch.Tensor, assigner: Assigner, hessian: torch.Tensor | None) -> torch.Tensor:
        if not getattr(assigner, "nearest", False):
            raise UserError("learned rounding chooses between each weight's two nearest levels, and this grid "
                            "assigns levels by a rate term (ECQ, ECQx)", "use rounding compensated with ECQ or ECQx")
        nearest = assigner(weight, slice(None), slice(None))
        if hessian is None:
            return nearest
        return per_group(weight, hessian, lambda w, h, rows: self._group(w, assigner, h, rows, nearest[rows]))

    def _group(self, w: torch.Tensor, assigner: Assigner, h: torch.Tensor, rows: slice, nearest: torch.Tensor
               ) -> torch.Tensor:
        steps = assigner.steps[rows].to(torch.float64)
        h = h + torch.eye(len(h), dtype=h.dtype) * self.damp * float(torch.diagonal(h).mean().clamp(min=1e-12))
        scaled = w / steps
        floor = torch.floor(scaled)
        rest = (scaled - floor).clamp(1e-4, 1 - 1e-4)
        zeta, gamma = 1.1, -0.1
        v = (-torch.log((zeta - gamma) / (rest - gamma) - 1)).to(torch.float32).requires_grad_(True)
        h32, w32, steps32, floor32 = h.float(), w.float(), steps.float(), floor.float()
        norm = float(((w32 @ h32) * w32).sum().clamp(min=1e-12))
        optimiser = torch.optim.Adam([v], lr=self.lr)
        warm = self.iterations // 5
        for step in range(self.iterations):
            soft = torch.clamp(torch.sigmoid(v) * (zeta - gamma) + gamma, 0, 1)
            delta = torch.clamp(floor32 + soft, assigner.qmin, assigner.qmax) * steps32 - w32
            loss = ((delta @ h32) * delta).sum() / norm
            if step >= warm:
                beta = 20 + (2 - 20) * (step - warm) / max(self.iterations - warm - 1, 1)
                loss = loss + self.regularisation * (1 - (2 * soft - 1).abs().pow(beta)).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            up = (torch.sigmoid(v) * (zeta - gamma) + gamma >= 0.5).to(torch.float64)
        learned = torch.clamp(floor + up, assigner.qmin, assigner.qmax).to(torch.int64)
        errors = [output_error(w, levels.to(torch.float64) * steps, h) for levels in (learned, nearest)]
        return learned if errors[0] < errors[1] else nearest


ROUNDINGS: dict[str, type[Rounding]] = {"nearest": NearestRounding, "compensated": CompensatedRounding,
                                        "learned": LearnedRounding}
"""The built-in roundings by name; `rounding_named` resolves the quantizers' `rounding` setting."""
CALIBRATION_SAMPLES = 256  # GPTQ's 128 calibration samples suffice; more only costs passes


def check_rounding(name: str) -> None:
    """Refuse a `rounding` setting that names no rounding."""
    if name != "auto" and name not in ROUNDINGS:
        raise UserError(f"unknown rounding {name!r}", f"use one of auto, {', '.join(ROUNDINGS)}")


def rounding_named(name: str, calibrated: bool) -> Rounding:
    """The rounding a quantizer's `rounding` setting names: `auto` is compensated when calibration inputs are given
    (`calibrated`), else nearest."""
    check_rounding(name)
    if name == "auto":
        name = "compensated" if calibrated else "nearest"
    return ROUNDINGS[name]()


def rounded(model: nn.Module, layers: dict[str, Any], records: dict[str, QuantizedLayer],
            assigners: dict[str, Assigner], rounding: Rounding, ref: ReferenceSamples | None) -> None:
    """Find again, with `rounding`, the levels of the records of the layers whose inputs it reads (when it reads
    any and `ref` gives calibration inputs; in model order, each set of layers written before the next is observed,
    see edgewise.compress.quant.input_moments), and write every record's weight into its layer. `assigners` holds
    each layer's grid choice; the records' steps do not change."""
    watched = {n: m for n, m in layers.items() if rounding.needs_inputs and ref is not None and observed(m)}
    for name, module in layers.items():
        if name not in watched:
            write_back(module, records[name])

    def requantize(moments: dict[str, torch.Tensor]) -> None:
        for name, hessian in moments.items():
            module, record = layers[name], records[name]
            weight = module.weight.detach().cpu().to(torch.float32).reshape(module.weight.shape[0], -1)
            levels = rounding.levels(weight, assigners[name], hessian)
            records[name] = dataclasses.replace(record, levels=levels.reshape(record.levels.shape).numpy())
            write_back(module, records[name])

    if watched:
        with_input_moments(model, watched, ref.x[:CALIBRATION_SAMPLES], ref.batch_size, requantize)
