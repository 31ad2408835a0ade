import torch
from torch import nn

from edgewise.compress.running import running_modules


def test_the_stack_holds_the_modules_under_way_innermost_last():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(list(stack))
            return x

    probe = Probe()
    outer = nn.Sequential(nn.Identity(), nn.Sequential(probe))
    with running_modules() as stack:
        outer(torch.zeros(1))
        assert stack == []
    assert seen == [[outer, outer[1], probe]]
    outer(torch.zeros(1))  # the hooks are gone after the block
    assert len(seen) == 2 and seen[1] == []
