"""Class-specific experts ("Mixture-of-Relevant-Experts"): sub-networks for chosen classes, unions, path similarity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.attention import written_out_copy
from edgewise.compress.graph import ChannelGraph
from edgewise.compress.pruning import Plan, PruneResult, apply_plan, prune
from edgewise.compress.reference import ReferenceSamples


def derive_expert(model: nn.Module, ref: ReferenceSamples, classes: tuple[int, ...], rate: float,
                  criterion: str = "lrp", **kwargs: Any) -> PruneResult:
    """Prune `model` to the channels most relevant to `classes`: scores see only those classes' samples or pixels.

    The expert keeps the full output layer (it still predicts every class) but is meant to be
    judged on the chosen ones. Other keyword arguments go to `prune`.
    """
    if not classes:
        raise UserError("an expert needs at least one class", "name the classes the expert is for")
    restricted = ReferenceSamples(ref.x, ref.y, ref.task, tuple(classes), ref.batch_size, ref.output)
    return prune(model, restricted, criterion, rate, **kwargs)


def expert_loss(classes: tuple[int, ...]):
    """Cross-entropy of an expert's job: each chosen class, or "anything else" (log-sum-exp of the other logits).

    Fine-tuning an expert with it spends the pruned network's capacity on telling its classes
    from the rest, not on separating classes it is not meant for.
    """
    chosen = list(classes)

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        others = [k for k in range(logits.shape[1]) if k not in classes]
        merged = torch.cat([logits[:, chosen], logits[:, others].logsumexp(1, keepdim=True)], dim=1)
        target = torch.full_like(y, len(chosen))
        for i, c in enumerate(chosen):
            target[y == c] = i
        return F.cross_entropy(merged, target)

    return loss


def union(plans: Mapping[str, Plan]) -> Plan:
    """The plan keeping every channel that any of the experts keeps (their combination)."""
    groups = set().union(*(p.keys() for p in plans.values()))
    return {g: sorted(set().union(*(set(p.get(g, [])) for p in plans.values()))) for g in sorted(groups)}


def combine(model: nn.Module, plans: Mapping[str, Plan], example_input: torch.Tensor,
            ignore: tuple[str, ...] = ()) -> nn.Module:
    """The original `model` reduced to the union of the experts' channels."""
    return apply_plan(model, union(plans), example_input, ignore)


def path_similarity(kept: list[set[int]]) -> float:
    """Overlap of the experts' kept channels in one layer: |intersection| / |union| (1.0 when identical)."""
    together = set().union(*kept)
    return len(set.intersection(*kept)) / len(together) if together else 1.0


def expert_table(model: nn.Module, plans: Mapping[str, Plan], example_input: torch.Tensor,
                 ignore: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Per channel group, as in the seeds' demonstrator: path similarity, each expert's pruning rate, parameter share.

    The parameter share is the group's layers' parameters over the whole original model's.
    """
    written_out = written_out_copy(model)  # the network prune() sees, so that heads are groups here too
    graph = ChannelGraph(written_out, example_input, ignore)
    modules = dict(written_out.named_modules())
    total = sum(p.numel() for p in written_out.parameters())
    rows = []
    for g in graph.groups:
        kept = {name: set(plan.get(g.name, range(g.channels))) for name, plan in plans.items()}
        params = sum(sum(p.numel() for p in modules[n].parameters(recurse=False)) for n, _, _ in g.members)
        rows.append({
            "layer": g.name, "coupled_layers": [n for n, _, _ in g.members[1:]], "channels": g.channels,
            "path_similarity": path_similarity(list(kept.values())),
            "pruning_rate": {name: 1.0 - len(k) / g.channels for name, k in kept.items()},
            "parameter_share": params / total,
        })
    return rows
