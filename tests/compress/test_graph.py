import pytest
import torch
import torch_pruning as tp
import torchvision
from torch import nn

from edgewise.compress.graph import _dependency_graph
from edgewise.compress.group_walk import bounded_walk


class TinyAttention(nn.Module):
    """Queries, keys and values split out of one convolution and flattened over positions, as EfficientViT's
    attention: the walk maps channels through a flatten (and back) and a split."""

    def __init__(self):
        super().__init__()
        self.stem, self.qkv, self.proj = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 24, 1), nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8 * 16, 4)

    def forward(self, x):
        x = self.stem(x)
        b, c, h, w = x.shape
        q, k, v = self.qkv(x).flatten(2).split([8, 8, 8], dim=1)
        y = (v @ (q.transpose(1, 2) @ k).softmax(-1).transpose(1, 2)).view(b, c, h, w)
        return self.head((self.proj(y) + x).flatten(1))


def _walk(graph, module):
    pruner = graph.get_pruner_of_module(module)
    group = graph.get_pruning_group(module, pruner.prune_out_channels, list(range(pruner.get_out_channels(module))))
    return [(item.dep.target.module, item.dep.handler, list(item.idxs), list(item.root_idxs)) for item in group]


@pytest.mark.parametrize(("build", "shape"), [(lambda: torchvision.models.resnet18(num_classes=10), (3, 32, 32)),
                                              (TinyAttention, (3, 4, 4))])
def test_the_bounded_walk_finds_the_groups_torch_pruning_finds(build, shape):
    """The fast mappings, the indexed check for a dependency met before and the mappings computed once give
    torch-pruning's own groups, item for item and index for index."""
    model = build().eval()
    graph = _dependency_graph(model, torch.rand(1, *shape))
    roots = [m for m in graph.module2node if isinstance(m, nn.Conv2d | nn.Linear)]
    plain = [_walk(graph, m) for m in roots]
    with bounded_walk(mapped=True):
        fast = [_walk(graph, m) for m in roots]
    assert fast == plain and sum(map(len, plain)) > 10
    assert tp.dependency.Group.has_pruning_op.__name__ == "has_pruning_op"  # the context put torch-pruning's back


def test_a_walk_through_a_flatten_meets_its_mapping():
    """TinyAttention's groups do pass a flatten both ways and a split: the comparison above covers those mappings."""
    graph = _dependency_graph(TinyAttention().eval(), torch.rand(1, 3, 4, 4))
    kinds = {type(m).__name__ for node in graph.module2node.values() for dep in node.dependencies
             for m in dep.index_mapping if m is not None}
    assert {"_FlattenIndexMapping", "_SplitIndexMapping"} <= kinds
