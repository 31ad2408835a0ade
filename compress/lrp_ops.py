"""LRP through the operations a forward computes between layers: residual sums, gates, attention products, layer
norms, means and functional activations, applied while the explained model runs.

zennit's rules hook modules; what a forward does with plain tensor operations (`out += identity`,
`x * se_gate`, `softmax(q k^T) @ v`, `F.layer_norm`) would otherwise pass the gradient, which does
not conserve relevance (a residual sum would hand its whole relevance to both branches). Each rule
here is a small object that, given an operation's inputs, output and the relevance at the output,
returns the relevance of each input; `op_rules()` applies them through a TorchFunctionMode. The
attention rule treats the softmax weights as constants, so relevance flows through the values
(the conservative propagation that AttnLRP builds on); queries and keys receive none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from edgewise.compress.running import running_modules

EPSILON = 1e-6


def _stable(z: torch.Tensor) -> torch.Tensor:
    """z moved away from 0 by EPSILON in its own sign: the epsilon rule's denominator."""
    return z + EPSILON * torch.where(z >= 0, 1.0, -1.0)


def _to(r: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Relevance summed back to the shape of a broadcast operand."""
    return r.sum_to_size(like.shape) if r.shape != like.shape else r


class SumRule:
    """a + b + ...: each term gets the share of the sum it contributed (zennit's Norm rule over a residual add)."""

    def relevance(self, inputs: Sequence[torch.Tensor], output: torch.Tensor, r: torch.Tensor) -> list[torch.Tensor]:
        ratio = r / _stable(output)
        return [_to(x * ratio, x) for x in inputs]


class ProductRule:
    """a * b: a gate (an operand broadcast over the other, as SE blocks' channel weights) is a constant and the
    gated signal keeps all relevance; two operands of the output's full size share it equally (AttnLRP's uniform
    rule for products)."""

    def relevance(self, inputs: Sequence[torch.Tensor], output: torch.Tensor, r: torch.Tensor) -> list[torch.Tensor]:
        a, b = inputs
        if a.numel() == output.numel() and b.numel() < output.numel():
            return [r, torch.zeros_like(b)]
        if b.numel() == output.numel() and a.numel() < output.numel():
            return [torch.zeros_like(a), r]
        return [_to(r / 2, a), _to(r / 2, b)]


class MatmulRule:
    """a @ b, both carrying relevance: the epsilon rule with each operand in turn as the weights, half each
    (AttnLRP's uniform rule)."""

    def relevance(self, inputs: Sequence[torch.Tensor], output: torch.Tensor, r: torch.Tensor) -> list[torch.Tensor]:
        a, b = inputs
        signal = r / _stable(output) / 2
        return [_to(a * (signal @ b.transpose(-1, -2)), a), _to(b * (a.transpose(-1, -2) @ signal), b)]


class AttentionRule:
    """weights @ values with the (softmax) attention weights held constant: the epsilon rule over the values, which
    get all relevance (the conservative propagation AttnLRP builds on; queries and keys get none)."""

    def __init__(self, weights: torch.Tensor) -> None:
        self.weights = weights

    def relevance(self, inputs: Sequence[torch.Tensor], output: torch.Tensor, r: torch.Tensor) -> list[torch.Tensor]:
        (values,) = inputs
        return [_to(values * (self.weights.transpose(-1, -2) @ (r / _stable(output))), values)]


class LayerNormRule:
    """layer_norm with its standard deviation held constant: a linear map of the centred input, then the epsilon
    rule; conservative up to the bias (AttnLRP's rule for LayerNorm)."""

    def __init__(self, shape: Sequence[int], weight: torch.Tensor | None, eps: float) -> None:
        self.dims = tuple(range(-len(shape), 0))
        self.weight = weight
        self.eps = eps

    def relevance(self, inputs: Sequence[torch.Tensor], output: torch.Tensor, r: torch.Tensor) -> list[torch.Tensor]:
        (x,) = inputs
        std = (x.var(self.dims, unbiased=False, keepdim=True) + self.eps).sqrt()
        signal = r / _stable(output)
        if self.weight is not None:
            signal = signal * self.weight
        back = (signal - signal.mean(self.dims, keepdim=True)) / std
        return [x * back]


class MeanRule:
    """mean or sum over dimensions: each element gets its share of the result (zennit's Norm rule for pooling)."""

    def __init__(self, dims: Sequence[int] | int | None, keepdim: bool) -> None:
        self.dims, self.keepdim = dims, keepdim

    def relevance(self, inputs: Sequence[torch.Tensor], output: torch.Tensor, r: torch.Tensor) -> list[torch.Tensor]:
        (x,) = inputs
        if self.dims is None:
            return [x * r / _stable(x.sum())]
        if not self.keepdim:
            for d in sorted(d % x.ndim for d in ([self.dims] if isinstance(self.dims, int) else self.dims)):
                r = r.unsqueeze(d)
        return [x * r / _stable(x.sum(self.dims, keepdim=True))]


class LinearRule:
    """F.linear called outside an nn.Linear (nn.MultiheadAttention's projections, Swin's window attention): the
    epsilon rule, as zennit applies it to linear layers."""

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight

    def relevance(self, inputs: Sequence[torch.Tensor], output: torch.Tensor, r: torch.Tensor) -> list[torch.Tensor]:
        (x,) = inputs
        return [x * ((r / _stable(output)) @ self.weight)]


class PassRule:
    """An elementwise activation: relevance passes through unchanged (zennit's Pass rule for activations)."""

    def relevance(self, inputs: Sequence[torch.Tensor], output: torch.Tensor, r: torch.Tensor) -> list[torch.Tensor]:
        return [r]


class _Apply(torch.autograd.Function):
    """Runs `compute` on the tensors forward and the rule's relevance backward. The output is recomputed backward
    from the saved inputs (these operations are cheap): a forward may change it in place (`result += input`)."""

    @staticmethod
    def forward(ctx: Any, rule: Any, compute: Callable[..., torch.Tensor], *tensors: torch.Tensor) -> torch.Tensor:
        ctx.rule, ctx.compute = rule, compute
        ctx.save_for_backward(*tensors)
        return compute(*tensors)

    @staticmethod
    def backward(ctx: Any, r: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        tensors = ctx.saved_tensors
        with torch.no_grad():
            relevance = ctx.rule.relevance(tensors, ctx.compute(*tensors), r)
        needed = ctx.needs_input_grad[2:]
        return (None, None, *(rel if need else None for rel, need in zip(relevance, needed, strict=True)))


def _carries(value: object) -> bool:
    """Whether a value carries relevance: a tensor computed from the input (not a parameter or a constant)."""
    return isinstance(value, torch.Tensor) and value.grad_fn is not None


def _is_inplace(name: str) -> bool:
    return name.startswith("__i") or (name.endswith("_") and not name.startswith("__"))


ADDS = {"add", "__add__", "__radd__", "add_", "__iadd__"}
PRODUCTS = {"mul", "__mul__", "__rmul__", "mul_", "__imul__"}
DIVISIONS = {"div", "__truediv__", "div_", "__itruediv__"}
MATMULS = {"matmul", "__matmul__", "bmm"}
REDUCTIONS = {"mean", "sum"}
ACTIVATIONS = {"relu", "relu_", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "hardtanh", "relu6",
               "elu", "leaky_relu", "softplus", "mish"}
LAYERS = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)


class OpRules(TorchFunctionMode):
    """The mode that routes a running forward's tensor operations through the rules above.

    It follows which module is running (compress.running) so that F.linear inside an nn.Linear,
    which zennit rules itself, is left alone.
    """

    def __init__(self, running: list[torch.nn.Module]) -> None:
        super().__init__()
        # softmax outputs (attention weights), kept alive for the forward so that their ids stay theirs
        self.constants: dict[int, torch.Tensor] = {}
        self.running = running

    def __torch_function__(self, func, types, args=(), kwargs=None):  # torch's protocol
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        ruled = self._rule(name, func, args, kwargs)
        if ruled is not None:
            rule, compute, tensors = ruled
            target = args[0]
            if _is_inplace(name):
                # the rule saves its inputs: it gets a copy of the target, whose own values then change in place
                tensors = (tensors[0].clone(), *tensors[1:])
            out = _Apply.apply(rule, compute, *tensors)
            return target.copy_(out) if _is_inplace(name) else out
        out = func(*args, **kwargs)
        if name == "softmax" or (name == "dropout" and args and id(args[0]) in self.constants):
            self.constants[id(out)] = out
        return out

    def _rule(self, name: str, func: Callable[..., Any], args: tuple, kwargs: dict[str, Any]
              ) -> tuple[Any, Callable[..., torch.Tensor], tuple[torch.Tensor, ...]] | None:
        """(rule, how to compute the output from the carrying tensors, those tensors), or None: plain autograd."""
        first = args[0] if args else None
        if len(args) == 2 and not kwargs and name in ADDS | PRODUCTS | DIVISIONS | MATMULS:
            a, b = args
            if _is_inplace(name) and not _carries(a):
                return None
            if name in ADDS and _carries(a) and _carries(b):
                return SumRule(), torch.add, (a, b)
            if name in PRODUCTS and _carries(a) and _carries(b):
                return ProductRule(), torch.mul, (a, b)
            if name in PRODUCTS and _carries(a) != _carries(b):
                # scaling by a constant is a diagonal linear layer: the epsilon rule passes relevance unchanged
                carrier, constant = (a, b) if _carries(a) else (b, a)
                return PassRule(), lambda t: torch.mul(t, constant), (carrier,)
            if name in DIVISIONS and _carries(a):
                # a normaliser (x / |x|) is held constant, as LayerNorm's deviation is
                constant = b.detach() if isinstance(b, torch.Tensor) else b
                return PassRule(), lambda t: torch.div(t, constant), (a,)
            if name in MATMULS and _carries(a) and _carries(b):
                if id(a) in self.constants:
                    weights = a.detach()
                    return AttentionRule(weights), lambda values: torch.matmul(weights, values), (b,)
                return MatmulRule(), torch.matmul, (a, b)
            return None
        if name == "linear" and _carries(first) and not (self.running and isinstance(self.running[-1], LAYERS)):
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            return LinearRule(weight.detach()), lambda t: F.linear(t, weight, bias), (first,)
        if name == "layer_norm" and _carries(first):
            shape = args[1] if len(args) > 1 else kwargs["normalized_shape"]
            weight = args[2] if len(args) > 2 else kwargs.get("weight")
            bias = args[3] if len(args) > 3 else kwargs.get("bias")
            eps = args[4] if len(args) > 4 else kwargs.get("eps", 1e-5)
            rule = LayerNormRule(shape, None if weight is None else weight.detach(), eps)
            return rule, lambda t: F.layer_norm(t, shape, weight, bias, eps), (first,)
        if name in REDUCTIONS and _carries(first) and set(kwargs) <= {"dim", "keepdim"} and len(args) <= 3:
            dims = args[1] if len(args) > 1 else kwargs.get("dim")
            keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
            reduce = getattr(torch, name)
            return MeanRule(dims, keepdim), (lambda t: reduce(t, dims, keepdim)) if dims is not None else reduce, \
                (first,)
        if name in ACTIVATIONS and _carries(first):
            return PassRule(), lambda t: func(t, *args[1:], **kwargs), (first,)
        if name == "scaled_dot_product_attention" and _carries(args[2] if len(args) > 2 else kwargs.get("value")):
            return self._attention(*args, **kwargs)
        return None

    @staticmethod
    def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
                   dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                   enable_gqa: bool = False) -> tuple[Any, Callable[..., torch.Tensor], tuple[torch.Tensor, ...]]:
        """scaled_dot_product_attention written out: the softmax weights are constants, the values carry."""
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        with torch.no_grad():
            logits = (q @ k.transpose(-2, -1)) * scale
            if is_causal:
                causal = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
                logits = logits.masked_fill(~causal, float("-inf"))
            if attn_mask is not None:
                logits = logits.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
                    else logits + attn_mask
            weights = logits.softmax(-1)
        return AttentionRule(weights), lambda values: torch.matmul(weights, values), (v,)


@contextmanager
def op_rules() -> Iterator[OpRules]:
    """Within the block, tensor operations between layers pass relevance by the rules above."""
    with running_modules() as running, OpRules(running) as mode:
        yield mode
