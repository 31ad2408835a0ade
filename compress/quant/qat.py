"""Quantization-aware training for ECQ and ECQx: a full-precision copy learns, the model computes quantized."""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from edgewise.base import progress
from edgewise.base.device import device_of
from edgewise.compress.distillation import distillation_loss
from edgewise.compress.quant.activations import fake_quantized_activations
from edgewise.compress.quant.entropy_constrained import Grid, ecq_records, normalized_relevance
from edgewise.compress.quant.model import QuantizedModel, weighted_entropy, write_back
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.tasks import loss_for


def _scaled_straight_through(weight_grad: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """Full-precision gradient: w_c x g for weights in a non-zero cluster, g for the zero cluster."""
    return torch.where(quantized != 0, quantized * weight_grad, weight_grad)


def train_quantized(model: nn.Module, layers: dict[str, nn.Module], grids: dict[str, Grid], *, method: str,
                    bits: int, lam: float, ref: ReferenceSamples | None, rho: float = 2.0, p: float = 0.1,
                    x: torch.Tensor, y: torch.Tensor, score: Callable[[nn.Module], float], epochs: int = 10,
                    lr: float = 1e-3, batch_size: int = 64, patience: int = 3, relevance_every: int = 10,
                    seed: int = 0, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                    label: str = "QAT", activation_bits: int | None = None, weight_decay: float = 0.0,
                    teacher: nn.Module | None = None, temperature: float = 1.0,
                    start: tuple[dict[str, torch.Tensor], dict] | None = None) -> QuantizedModel:
    """Train `model` quantization-aware on (x, y), on the model's device, and return the best quantized model by
    `score` (validation).

    Each step: forward and backward through the quantized weights; the full-precision copy takes the scaled
    straight-through gradient; Adam steps it and every other parameter; the weights are re-assigned with ECQ (or
    ECQx, with relevances recomputed on the current batch every `relevance_every` steps and smoothed) and written
    back; `weight_decay` is Adam's. Stops early after `patience` epochs without a better validation score. With a
    `teacher` (the float model) the loss is distillation towards its outputs at `temperature`
    (edgewise.compress.distillation) instead of `loss_fn` on `y`, and only ECQx's relevances read `y` (which
    output to explain). `start` (a state dict and its records: the post-training assignment) is returned where no
    epoch scores better. With `activation_bits` every quantized layer's input is fake-quantized too
    (compress.quant.activations), in training and in the validation score, as a W4A8 file runs it; the model
    returned has no hooks.
    """
    quantizing = fake_quantized_activations(layers, activation_bits) if activation_bits else nullcontext()
    with quantizing:
        return _train(model, layers, grids, method=method, bits=bits, lam=lam, ref=ref, rho=rho, p=p, x=x, y=y,
                      score=score, epochs=epochs, lr=lr, batch_size=batch_size, patience=patience,
                      relevance_every=relevance_every, seed=seed, loss_fn=loss_fn, label=label,
                      weight_decay=weight_decay, teacher=teacher, temperature=temperature, start=start)


def _train(model: nn.Module, layers: dict[str, nn.Module], grids: dict[str, Grid], *, method: str, bits: int,
           lam: float, ref: ReferenceSamples | None, rho: float, p: float, x: torch.Tensor, y: torch.Tensor,
           score: Callable[[nn.Module], float], epochs: int, lr: float, batch_size: int, patience: int,
           relevance_every: int, seed: int, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
           label: str, weight_decay: float, teacher: nn.Module | None, temperature: float,
           start: tuple[dict[str, torch.Tensor], dict] | None) -> QuantizedModel:
    task = ref.task if ref is not None else "classification"
    loss_fn = loss_fn or loss_for(task)
    distill = distillation_loss(task, temperature) if teacher is not None else None
    if teacher is not None:
        teacher.eval()
    generator = torch.Generator().manual_seed(seed)
    device = device_of(model)
    full = {n: m.weight.detach().clone().requires_grad_(True) for n, m in layers.items()}
    quantized_params = {id(m.weight) for m in layers.values()}
    others = [q for q in model.parameters() if id(q) not in quantized_params]
    optimiser = torch.optim.Adam([*full.values(), *others], lr=lr, weight_decay=weight_decay)
    names = set(layers)
    relevance = normalized_relevance(model, ref, names) if method == "ecqx" else None

    def reassign() -> dict:
        records, _, _ = ecq_records({n: w.detach() for n, w in full.items()}, layers, grids, lam, bits, relevance,
                                    rho, p)
        for name, module in layers.items():
            write_back(module, records[name])
        return records

    records = reassign()
    initial = copy.deepcopy(model.state_dict())
    best = (score(model), initial, records, 0)
    if start is not None:
        model.load_state_dict(start[0])
        if (started := score(model)) >= best[0]:
            best = (started, start[0], start[1], 0)
        model.load_state_dict(initial)
    history: dict[str, Any] = {"loss": [], "val_score": [best[0]], "sparsity": [], "entropy_bits": []}
    step, stale = 0, 0
    with progress.task(label, epochs) as job:
        for epoch in range(1, epochs + 1):
            model.train()
            total = 0.0
            for idx in torch.randperm(len(x), generator=generator).split(batch_size):
                optimiser.zero_grad(set_to_none=True)
                for module in layers.values():
                    module.weight.grad = None
                batch_x, batch_y = x[idx].to(device), y[idx].to(device)
                if distill is not None:
                    with torch.no_grad():
                        target = teacher(batch_x)
                    loss = distill(model(batch_x), target)
                else:
                    loss = loss_fn(model(batch_x), batch_y)
                loss.backward()
                for name, module in layers.items():
                    full[name].grad = _scaled_straight_through(module.weight.grad, module.weight.detach())
                optimiser.step()
                step += 1
                total += float(loss.detach()) * len(idx)
                if relevance is not None and step % relevance_every == 0:
                    batch = ReferenceSamples(batch_x, batch_y, task, output="logit")
                    relevance = normalized_relevance(model, batch, names, previous=relevance)
                records = reassign()
            model.eval()
            val = score(model)
            weights = sum(r.levels.size for r in records.values())
            sparsity = sum(int((r.levels == 0).sum()) for r in records.values()) / max(weights, 1)
            entropy = weighted_entropy(records)
            history["loss"].append(total / len(x))
            history["val_score"].append(val)
            history["sparsity"].append(sparsity)
            history["entropy_bits"].append(entropy)
            job.advance(f"loss {total / len(x):.4f}  val {val:.4f}  sparsity {sparsity:.2f}  "
                        f"H {entropy:.2f} bit")
            if val > best[0]:
                best, stale = (val, copy.deepcopy(model.state_dict()), records, epoch), 0
            else:
                stale += 1
                if stale >= patience:
                    history["stopped_early"] = True
                    break
    model.load_state_dict(best[1])
    model.eval()
    history.update(best_epoch=best[3], best_val_score=best[0], epochs_run=len(history["loss"]))
    return QuantizedModel(model, best[2], method, bits, history)
