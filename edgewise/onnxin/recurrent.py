"""ONNX LSTM and GRU as torch's nn.LSTM and nn.GRU, and their weights written back in ONNX's layout.

ONNX stacks each direction's gate weights in another order than torch (LSTM: input, output, forget, cell against
torch's input, forget, cell, output; GRU: update, reset, hidden against reset, update, new), keeps both biases in
one tensor, and may lay the sequence out batch-first (layout 1) or run a single reverse direction, which torch
writes as a flip in time. Peepholes, clipping, coupled input-forget gates, other activations, per-sample sequence
lengths and GRU's reset-before-linear form have no torch equivalent: such a node is refused with its attribute.
"""

from __future__ import annotations

from typing import Any

import torch
from onnx2torch.utils.common import OnnxMapping, OnnxToTorchModule, OperationConverterResult, get_const_value
from torch import nn

from edgewise.compress.layers import gate_rows
from edgewise.onnxin.handlers import OpHandler
from edgewise.onnxin.versions import UnsupportedNode

_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


class OnnxRecurrent(nn.Module, OnnxToTorchModule):
    """An ONNX LSTM or GRU node around torch's layer `rnn`: takes X and the optional initial states in the node's
    `layout`, returns Y (sequence, directions, batch, hidden; or batch-first) and the last states as ONNX does."""

    def __init__(self, rnn: nn.LSTM | nn.GRU, layout: int, reverse: bool, outputs: int) -> None:
        super().__init__()
        self.rnn, self.layout, self.reverse, self.outputs = rnn, layout, reverse, outputs

    def forward(self, x: torch.Tensor, initial_h: torch.Tensor | None = None,
                initial_c: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, ...]:
        every = self._outputs(x, initial_h, initial_c)
        return every[0] if self.outputs == 1 else every[:self.outputs]

    def _outputs(self, x: torch.Tensor, initial_h: torch.Tensor | None,
                 initial_c: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        time = 1 if self.layout else 0
        if self.reverse:
            x = x.flip(time)
        states = [s.transpose(0, 1) if self.layout else s for s in (initial_h, initial_c)]
        directions, hidden = 2 if self.rnn.bidirectional else 1, self.rnn.hidden_size
        batch = x.shape[1 - time]
        if isinstance(self.rnn, nn.LSTM):
            zeros = x.new_zeros(directions, batch, hidden)
            given = None if states[0] is None and states[1] is None else (
                states[0] if states[0] is not None else zeros, states[1] if states[1] is not None else zeros)
            out, (h, c) = self.rnn(x, given)
            last = [h, c]
        else:
            out, h = self.rnn(x, states[0])
            last = [h]
        if self.reverse:
            out = out.flip(time)
        if self.layout:
            y = out.reshape(batch, out.shape[1], directions, hidden)
            return (y, *(s.transpose(0, 1) for s in last))
        y = out.reshape(out.shape[0], batch, directions, hidden).transpose(1, 2)
        return (y, *last)


def _convert(node: Any, graph: Any) -> Any:
    op = node.operation_type
    attributes = node.attributes
    inputs = list(node.input_values) + [""] * (8 - len(node.input_values))
    refused = [f"{name}={attributes[name]!r}" for name in ("clip", "activation_alpha", "activation_beta")
               if name in attributes]
    if list(attributes.get("activations", _DEFAULT_ACTIVATIONS[op] * 2))[:len(_DEFAULT_ACTIVATIONS[op])] != \
            _DEFAULT_ACTIVATIONS[op]:
        refused.append(f"activations={list(attributes['activations'])}")
    if op == "LSTM" and attributes.get("input_forget", 0):
        refused.append("input_forget=1")
    if op == "GRU" and not attributes.get("linear_before_reset", 0):
        refused.append("linear_before_reset=0 (torch's GRU applies the reset after the linear map)")
    if inputs[4]:
        refused.append("sequence_lens (per-sample lengths)")
    if op == "LSTM" and inputs[7] and bool(torch.as_tensor(get_const_value(inputs[7], graph)).any()):
        refused.append("peepholes (P)")
    if refused:
        raise UnsupportedNode(f"{op} {node.name!r} uses {', '.join(refused)}, which torch's nn.{op} does not compute")
    try:
        w, r = (torch.as_tensor(get_const_value(inputs[i], graph)).float() for i in (1, 2))
        b = torch.as_tensor(get_const_value(inputs[3], graph)).float() if inputs[3] else None
    except KeyError:
        raise UnsupportedNode(f"{op} {node.name!r} computes its weights at run time; only constant weights "
                              "convert") from None
    direction = attributes.get("direction", "forward")
    hidden = int(attributes.get("hidden_size", r.shape[-1]))
    layer = (nn.LSTM if op == "LSTM" else nn.GRU)(w.shape[2], hidden, bias=True, batch_first=bool(
        attributes.get("layout", 0)), bidirectional=direction == "bidirectional")
    rows = torch.from_numpy(gate_rows(op, w.shape[1], to_onnx=False))
    with torch.no_grad():
        for d, suffix in enumerate(["", "_reverse"][:w.shape[0]]):
            getattr(layer, f"weight_ih_l0{suffix}").copy_(w[d][rows])
            getattr(layer, f"weight_hh_l0{suffix}").copy_(r[d][rows])
            wb, rb = b[d].chunk(2) if b is not None else (torch.zeros(w.shape[1]),) * 2
            getattr(layer, f"bias_ih_l0{suffix}").copy_(wb[rows])
            getattr(layer, f"bias_hh_l0{suffix}").copy_(rb[rows])
    module = OnnxRecurrent(layer, int(attributes.get("layout", 0)), direction == "reverse", len(node.output_values))
    states = (inputs[5], inputs[6]) if op == "LSTM" else (inputs[5],)
    return OperationConverterResult(torch_module=module, onnx_mapping=OnnxMapping(
        inputs=(inputs[0], *states), outputs=tuple(node.output_values)))


def _write_back(layer: OnnxRecurrent, node: Any) -> dict[int, tuple[str, torch.Tensor]]:
    """W, R and B of the node from the torch layer's (possibly pruned) weights, in ONNX's gate order."""
    rnn = layer.rnn
    rows = torch.from_numpy(gate_rows(type(rnn).__name__, rnn.weight_ih_l0.shape[0], to_onnx=True))
    suffixes = ["", "_reverse"] if rnn.bidirectional else [""]

    def stacked(name: str) -> torch.Tensor:
        return torch.stack([getattr(rnn, f"{name}_l0{s}").detach()[rows] for s in suffixes])

    bias = torch.cat([stacked("bias_ih"), stacked("bias_hh")], dim=1)
    return {1: ("W", stacked("weight_ih")), 2: ("R", stacked("weight_hh")), 3: ("B", bias)}


LSTM = OpHandler("LSTM", {7: _convert, 14: _convert}, layer=OnnxRecurrent, write_back=_write_back)
GRU = OpHandler("GRU", {7: _convert, 14: _convert}, layer=OnnxRecurrent, write_back=_write_back)
