import torch
import torch_pruning as tp
import torchvision

from edgewise.compress.graph import _bounded_walk, _dependency_graph


def _walk(graph, module):
    pruner = graph.get_pruner_of_module(module)
    group = graph.get_pruning_group(module, pruner.prune_out_channels, list(range(pruner.get_out_channels(module))))
    return [(item.dep.target.module, item.dep.handler, list(item.idxs), list(item.root_idxs)) for item in group]


def test_the_bounded_walk_finds_the_groups_torch_pruning_finds():
    """The walk's check for a dependency met before looks among those of the same target and handler only: the
    groups come out as torch-pruning's own scan gives them, item for item."""
    model = torchvision.models.resnet18(num_classes=10).eval()
    graph = _dependency_graph(model, torch.rand(1, 3, 32, 32))
    roots = [m for m in graph.module2node if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    plain = [_walk(graph, m) for m in roots]
    with _bounded_walk():
        indexed = [_walk(graph, m) for m in roots]
    assert indexed == plain and sum(map(len, plain)) > 100
    assert tp.dependency.Group.has_pruning_op.__name__ == "has_pruning_op"  # the context put torch-pruning's back
