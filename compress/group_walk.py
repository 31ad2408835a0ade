"""torch-pruning's group walk as the kit runs it: bounded, and its hot paths made fast for attention networks.

torch-pruning finds a channel group by walking the dependency graph from a root layer, mapping
channel indices through every flatten, split and concatenation as lists of (index, root index)
pairs. On attention networks (EfficientViT, LeViT) the walk reaches the same tensors by many
paths, so a 224-pixel network of two million parameters spent ten minutes there (profiled on
efficientvit_m0: 171 million index pairs built one keyword call at a time, a duplicate check
that scanned the whole group for every step, and every mapping recomputed before every root).
Within `bounded_walk` the same walk runs with the same results, faster, and stops at the bounds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch_pruning as tp
from torch_pruning._helpers import _HybridIndex
from torch_pruning.dependency import index_mapping

MAX_GROUP_INDICES = 2_000_000
"""The most channel indices one group's mapping may reach: the flattening reshapes of window attention (Swin) make
torch-pruning's index lists grow multiplicatively, to tens of gigabytes, and such a group is left whole."""

MAX_GROUP_STEPS = 5_000
"""The most dependencies one group's walk may collect. The largest group of the architectures we prune has under 500
(torchvision's vit_b_16: its residual stream); attention converted from ONNX (PP-OCRv4's recogniser) reaches the same
tensors by so many paths, each with other channel indices, that torch-pruning's walk ran for over eight minutes, and
such a group is left whole."""


class GroupTooLarge(Exception):
    """A group whose walk passes a bound; the message says which, as the reason the group is left whole."""


_new = tuple.__new__
"""Builds an (index, root index) pair as `_new(_HybridIndex, (idx, root))`: torch-pruning's keyword constructor runs
Python code per pair, and the walk builds millions; inline in the comprehensions below for the same reason."""


def _flatten(self: index_mapping._FlattenIndexMapping, idxs: list) -> list:
    """_FlattenIndexMapping: each channel to its `stride` flattened positions, or back; the same pairs in the same
    order, refused past MAX_GROUP_INDICES."""
    stride, pair, new = self._stride, _HybridIndex, _new
    if self.reverse:
        return list({new(pair, (i[0] // stride, i[1])) for i in idxs})
    if len(idxs) * stride > MAX_GROUP_INDICES:
        raise GroupTooLarge(f"torch-pruning's index mapping of its channels grows past {MAX_GROUP_INDICES:,} indices "
                            "(window partitions, as in Swin)")
    return [new(pair, (k, i[1])) for i in idxs for k in range(i[0] * stride, (i[0] + 1) * stride)]


def _split(self: index_mapping._SplitIndexMapping, idxs: list) -> list:
    """_SplitIndexMapping: into a split's part (the indices inside it, shifted) or back out of it."""
    start, end, pair, new = self.offset[0], self.offset[1], _HybridIndex, _new
    if self.reverse:
        return [new(pair, (i[0] + start, i[1])) for i in idxs]
    return [new(pair, (i[0] - start, i[1])) for i in idxs if start <= i[0] < end]


@contextmanager
def bounded_walk(mapped: bool = False) -> Iterator[None]:
    """Within the block, torch-pruning's group walk gives its own groups, faster, or raises GroupTooLarge past
    MAX_GROUP_INDICES indices or MAX_GROUP_STEPS dependencies. Its check whether a dependency was met before with
    the same indices looks among those of the same target and handler only (it scanned every dependency of the
    group: a walk of n steps cost n squared comparisons). With `mapped` (the graph's index mappings are up to date
    and the model does not change within the block), they are not recomputed before every group."""
    group = tp.dependency.Group
    flatten, split = index_mapping._FlattenIndexMapping, index_mapping._SplitIndexMapping
    saved = (flatten.__call__, split.__call__, group.add_dep, group.has_pruning_op,
             index_mapping.update_index_mapping)

    def bounded_add(self, dep, idxs):
        if len(self) >= MAX_GROUP_STEPS:
            raise GroupTooLarge(f"torch-pruning's walk of the layers its channels reach passes {MAX_GROUP_STEPS:,} "
                                "steps (the same tensors reached by many paths with other channel indices, as in "
                                "attention converted from ONNX)")
        self.__dict__.setdefault("_met", {}).setdefault((dep.target, dep.handler), []).append(idxs)
        return saved[2](self, dep, idxs)

    def indexed_has_pruning_op(self, dep, idxs):
        return any(met == idxs for met in self.__dict__.get("_met", {}).get((dep.target, dep.handler), ()))

    flatten.__call__, split.__call__, group.add_dep, group.has_pruning_op = _flatten, _split, bounded_add, \
        indexed_has_pruning_op
    if mapped:
        index_mapping.update_index_mapping = lambda graph: None
    try:
        yield
    finally:
        (flatten.__call__, split.__call__, group.add_dep, group.has_pruning_op,
         index_mapping.update_index_mapping) = saved
