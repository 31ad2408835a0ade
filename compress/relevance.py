"""LRP relevance with zennit: rule composites, and relevance at layer outputs, inputs and weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn
from zennit.canonizers import NamedMergeBatchNorm
from zennit.composites import SpecialFirstLayerMapComposite, layer_map_base
from zennit.core import Composite
from zennit.rules import AlphaBeta, Epsilon, Flat, Gamma, WSquare, ZPlus
from zennit.types import Convolution
from zennit.types import Linear as AnyLinear

from edgewise.base.device import device_of
from edgewise.board.errors import UserError
from edgewise.compress.attention import written_out_copy
from edgewise.compress.fold import batchnorm_pairs
from edgewise.compress.layers import watch_weight_inputs
from edgewise.compress.lrp_ops import op_rules
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.taps import capture_outputs

RULES: dict[str, Callable[[], object]] = {
    "epsilon": lambda: Epsilon(epsilon=1e-6),
    "zplus": ZPlus,
    "alpha1beta0": lambda: AlphaBeta(alpha=1.0, beta=0.0),
    "alpha2beta1": lambda: AlphaBeta(alpha=2.0, beta=1.0),
    "gamma": lambda: Gamma(gamma=0.25),
    "flat": Flat,
    "wsquare": WSquare,
}
DEFAULT_RULES = {"first": "flat", "conv": "zplus", "linear": "epsilon"}


def lrp_composite(rules: Mapping[str, str] | None = None, merge: list[tuple[str, str]] = ()) -> Composite:
    """A zennit composite: rule per layer kind (`first`, `conv`, `linear`), BatchNorms merged into their layers.

    The default is the reference composite of the project: flat on the first layer, z+ on
    convolutions, epsilon on linear layers (zennit's EpsilonPlusFlat). Rules are chosen by name
    from RULES. `merge` names the (layer, BatchNorm) pairs whose BatchNorm directly follows its
    layer (batchnorm_pairs): those are merged into the layer; any other BatchNorm (a
    pre-activation one, as in DenseNet) passes relevance through unchanged (zennit's Pass rule).
    Run the model under lrp_ops.op_rules() so that sums, gates, attention and layer norms between
    the layers conserve relevance too.
    """
    chosen = {**DEFAULT_RULES, **(rules or {})}
    for kind, rule in chosen.items():
        if kind not in DEFAULT_RULES:
            raise UserError(f"unknown LRP layer kind {kind!r}", f"use {', '.join(DEFAULT_RULES)}")
        if rule not in RULES:
            raise UserError(f"unknown LRP rule {rule!r} for {kind}", f"use one of {', '.join(RULES)}")
    return SpecialFirstLayerMapComposite(
        layer_map=[*layer_map_base(), (Convolution, RULES[chosen["conv"]]()), (nn.Linear, RULES[chosen["linear"]]())],
        first_map=[(AnyLinear, RULES[chosen["first"]]())],
        canonizers=[NamedMergeBatchNorm([((layer,), bn) for layer, bn in merge])] if merge else [],
    )


def explainable_copy(model: nn.Module) -> nn.Module:
    """An eval-mode deep copy with in-place activations turned off (zennit's hooks cannot see through them) and
    nn.MultiheadAttention written out (attention.ExplicitAttention) so that rules reach inside it."""
    clone = written_out_copy(model)
    for module in clone.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    return clone


def _explained(model: nn.Module, ref: ReferenceSamples, rules: Mapping[str, str] | None
               ) -> tuple[nn.Module, Composite]:
    """The explainable copy and its composite (BatchNorm pairs traced before any hook is attached)."""
    clone = explainable_copy(model)
    return clone, lrp_composite(rules, batchnorm_pairs(clone, ref.x[:1]))


def _backward_passes(modified: nn.Module, ref: ReferenceSamples, size: int) -> Iterator[torch.Tensor]:
    """Per batch of `ref`, its input once relevance has flowed back to it through the composite-modified model:
    `.grad` holds the input relevance, and retained gradients inside the model are their tensors' relevance."""
    for x, y in ref.batches(device_of(modified), size):
        x = x.clone().requires_grad_(x.is_floating_point())  # token or byte inputs take no relevance
        with op_rules():
            logits = modified(x)
        torch.autograd.backward(logits, ref.output_seed(logits, y))
        yield x


def layer_relevance(model: nn.Module, ref: ReferenceSamples, names: set[str],
                    rules: Mapping[str, str] | None = None, absolute: bool = True
                    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Relevance per output channel of each named layer, summed over samples and positions, and the input relevance.
    A layer no relevance reaches (it has no path to the scored output) is left out.

    Relevance arrives where the gradient would: the modified gradient at a layer's output tensor
    is that output's relevance. With `absolute` each element's |R| is summed (the pruning score
    of Yeom et al.); otherwise the signed sum, for checking conservation. The second result is the
    signed relevance summed over the inputs, per sample.
    """
    clone, composite = _explained(model, ref, rules)
    size = ref.batch_for(clone, backward=True)  # probed before any hook is attached
    sums: dict[str, torch.Tensor] = {}
    input_relevance = []
    # the capture hooks come after zennit's: a token-layout layer's recorded view replaces its output
    with composite.context(clone) as modified, capture_outputs(modified, names, retain_grad=True) as out:
        for x in _backward_passes(modified, ref, size):
            for name, tensor in out.items():
                if tensor.grad is None:  # no path to the scored output (a detector's box branch): no score
                    continue
                rel = tensor.grad.abs() if absolute else tensor.grad
                per_channel = rel.transpose(0, 1).reshape(rel.shape[1], -1).sum(1)
                sums[name] = sums.get(name, 0) + per_channel.detach()
            input_relevance.append(x.grad.flatten(1).sum(1).detach() if x.grad is not None else
                                   torch.zeros(len(x), device=x.device))
    return sums, torch.cat(input_relevance)


def _weight_gradient(module: nn.Module, inputs: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    """d/dW of sum(z x signal) for the layer's linear map z = W a: the sum over the batch of a_i x signal_j."""
    weight = module.weight.detach().requires_grad_(True)
    if isinstance(module, nn.Linear):
        out = torch.nn.functional.linear(inputs, weight)
    else:
        out = module._conv_forward(inputs, weight, None)
    (grad,) = torch.autograd.grad(out, weight, grad_outputs=signal)
    return grad


def weight_relevance(model: nn.Module, ref: ReferenceSamples, names: set[str],
                     rules: Mapping[str, str] | None = None, epsilon: float = 1e-6) -> dict[str, torch.Tensor]:
    """Relevance of each weight, R_ij = sum over samples of a_i w_ij R_j / z_j (the epsilon form), as |R| per layer.

    R_j is the relevance arriving at the layer's output under the composite; z_j the layer's
    pre-activation output (stabilised by epsilon with its sign); a_i its input. Computed as w times
    the gradient of sum(z x R/z) with respect to w, for linear and (non-transposed) conv layers.
    """
    clone, composite = _explained(model, ref, rules)
    size = ref.batch_for(clone, backward=True)  # probed before any hook is attached
    captured: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    modules = dict(clone.named_modules())

    def keeper(name: str) -> Callable[[torch.Tensor, torch.Tensor], None]:
        def keep(x: torch.Tensor, out: torch.Tensor) -> None:
            out.retain_grad()
            captured[name] = (x.detach(), out)
        return keep

    removers = [watch_weight_inputs(modules[name], keeper(name)) for name in names]
    totals: dict[str, torch.Tensor] = {}
    try:
        with composite.context(clone) as modified:
            for _ in _backward_passes(modified, ref, size):
                for name, (inputs, out) in captured.items():
                    if out.grad is None:  # no path to the scored output (another head of the model): no relevance
                        continue
                    z = out.detach()
                    signal = out.grad / (z + epsilon * torch.where(z >= 0, 1.0, -1.0))
                    module = modules[name]
                    rel = (module.weight.detach() * _weight_gradient(module, inputs, signal)).abs()
                    totals[name] = totals.get(name, 0) + rel
                captured.clear()
    finally:
        for remove in removers:
            remove()
    return totals
