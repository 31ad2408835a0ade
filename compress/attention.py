"""nn.MultiheadAttention written out with its projections as nn.Linear layers, computing the same function, so that
LRP rules reach each projection and the attention product (torch's version runs as one opaque function)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.copying import model_copy


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer.to(weight.device)


class ExplicitAttention(nn.Module):
    """The same attention as a given nn.MultiheadAttention: q, k, v and out_proj linear layers around
    F.scaled_dot_product_attention, with torch's calling convention (query, key, value, masks, need_weights)."""

    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        if attention.bias_k is not None or attention.add_zero_attn:
            raise UserError("nn.MultiheadAttention with add_bias_kv or add_zero_attn is not supported by LRP here",
                            "score this model with a criterion that needs no relevance (l1, taylor, gradient)")
        e = attention.embed_dim
        self.num_heads, self.batch_first = attention.num_heads, attention.batch_first
        if attention.in_proj_weight is not None:
            weights = attention.in_proj_weight.detach().chunk(3)
        else:
            weights = (attention.q_proj_weight.detach(), attention.k_proj_weight.detach(),
                       attention.v_proj_weight.detach())
        biases = attention.in_proj_bias.detach().split(e) if attention.in_proj_bias is not None else (None,) * 3
        self.q, self.k, self.v = (_linear(w, b) for w, b in zip(weights, biases, strict=True))
        self.out_proj = _linear(attention.out_proj.weight.detach(), attention.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        return x.reshape(n, length, self.num_heads, -1).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Torch's MultiheadAttention.forward, in eval mode (no dropout)."""
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        q, k, v = self._heads(self.q(query)), self._heads(self.k(key)), self._heads(self.v(value))
        mask = _combined_mask(attn_mask, key_padding_mask, q)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal and mask is None)
        n, heads, length, dim = out.shape
        out = self.out_proj(out.transpose(1, 2).reshape(n, length, heads * dim))
        weights = None
        if need_weights:
            with torch.no_grad():
                logits = q @ k.transpose(-2, -1) * dim ** -0.5
                if mask is not None:
                    logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
                weights = logits.softmax(-1)
                weights = weights.mean(1) if average_attn_weights else weights
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not batched:
            out = out.squeeze(1)
            weights = None if weights is None else weights.squeeze(0)
        return out, weights


def _combined_mask(attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None, q: torch.Tensor
                   ) -> torch.Tensor | None:
    """One additive float mask of shape broadcastable to (N, heads, L, S) from torch's two (True = masked out)."""
    def additive(mask: torch.Tensor) -> torch.Tensor:
        if mask.dtype == torch.bool:
            return torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(mask, float("-inf"))
        return mask.to(q.dtype)

    total = None
    if attn_mask is not None:
        total = additive(attn_mask)
        if total.dim() == 3:  # (N x heads, L, S)
            total = total.reshape(q.shape[0], q.shape[1], *total.shape[1:])
    if key_padding_mask is not None:
        padding = additive(key_padding_mask)[:, None, None, :]
        total = padding if total is None else total + padding
    return total


def written_out_copy(model: nn.Module) -> nn.Module:
    """An eval-mode deep copy of `model` with every nn.MultiheadAttention written out: the network pruning and
    relevance work on (torch's module ties its inner width to the embedding width and runs as one opaque function)."""
    return explicit_attention(model_copy(model).eval())


def explicit_attention(model: nn.Module) -> nn.Module:
    """Replace every nn.MultiheadAttention inside `model` (in place) by its ExplicitAttention; returns `model`."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.MultiheadAttention):
                setattr(module, child_name, ExplicitAttention(child))
    return model
