"""Every criterion on tasks without class labels (sequences, embeddings, outputs) and on integer inputs."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgewise import compress
from edgewise.compress.graph import PruningError
from edgewise.compress.model_stats import measure_cost
from edgewise.compress.tasks import loss_for


class _Bytes(nn.Module):
    """A byte classifier: integers 0..256 one-hot encoded inside, a 1-D convolution, a linear head per step or whole."""

    def __init__(self, steps: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv1d(257, 16, 3, padding=1)
        self.mid = nn.Conv1d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, 5)
        self.steps = steps

    def forward(self, x):
        h = torch.relu(self.mid(torch.relu(self.conv(F.one_hot(x.long(), 257).float().transpose(1, 2)))))
        return self.head(h.transpose(1, 2)) if self.steps else self.head(h.mean(2))


def _bytes(n=12):
    return torch.randint(0, 257, (n, 20), generator=torch.Generator().manual_seed(0), dtype=torch.int32)


@pytest.mark.parametrize("criterion", ["lrp", "gradient", "taylor", "l1"])
def test_integer_inputs_are_scored_by_every_criterion(criterion):
    torch.manual_seed(0)
    model = _Bytes().eval()
    x = _bytes()
    ref = compress.ReferenceSamples(x, model(x).argmax(1), "classification")
    result = compress.prune(model, ref, criterion, 0.3)
    assert result.after.params < result.before.params


@pytest.mark.parametrize("criterion", ["lrp", "taylor"])
def test_sequences_and_embeddings_seed_from_the_source_outputs(criterion):
    torch.manual_seed(0)
    x = _bytes()
    steps = _Bytes(steps=True).eval()
    labels = steps(x).argmax(-1)  # one class per step: (samples, steps)
    assert compress.prune(steps, compress.ReferenceSamples(x, labels, "sequence"), criterion, 0.3).after.params < \
        sum(p.numel() for p in steps.parameters())
    embedder = _Bytes().eval()
    target = F.normalize(embedder(x), dim=1).detach()
    ref = compress.ReferenceSamples(x, target, "embedding")
    assert torch.equal(ref.output_seed(embedder(x), target), target)
    assert compress.prune(embedder, ref, criterion, 0.3).after.params < sum(p.numel() for p in embedder.parameters())


def test_the_losses_are_zero_at_the_target_and_scale_free():
    out = torch.randn(4, 6)
    assert float(loss_for("embedding")(out, out)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss_for("regression")(10 * out, 10 * out)) == 0.0
    assert float(loss_for("regression")(torch.zeros(4, 6), out)) == pytest.approx(1.0)  # as far as predicting 0
    logits = torch.randn(2, 5, 3)
    assert float(loss_for("sequence")(logits, logits.argmax(-1))) < float(loss_for("sequence")(-logits,
                                                                                               logits.argmax(-1)))


def test_a_model_whose_widths_are_all_recurrent_is_refused_with_the_reason():
    class _Gru(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(8, 16, batch_first=True)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            return self.head(self.gru(x)[0][:, -1])

    x = torch.randn(6, 5, 8)
    model = _Gru().eval()
    with pytest.raises(PruningError, match="recurrent layers \\(gru\\)"):
        compress.prune(model, compress.ReferenceSamples(x, model(x).argmax(1), "classification"), "l1", 0.3)
    assert measure_cost(model, (5, 8)).macs == 5 * 3 * 16 * (8 + 16) + 16 * 3  # each step's three gates, the head


def test_a_group_torch_pruning_cannot_walk_is_left_whole_with_its_reason():
    class _Rows(nn.Module):  # a training script's row reader: 1-D convolutions feeding a GRU, as a digit is read
        def __init__(self) -> None:
            super().__init__()
            self.front = nn.Sequential(nn.Conv1d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv1d(16, 16, 3, padding=1))
            self.gru = nn.GRU(16, 12, batch_first=True)
            self.head = nn.Linear(12, 4)

        def forward(self, x):
            return self.head(self.gru(self.front(x.transpose(1, 2)).transpose(1, 2))[0][:, -1])

    torch.manual_seed(0)
    model, x = _Rows().eval(), torch.randn(10, 8, 8)
    result = compress.prune(model, compress.ReferenceSamples(x, model(x).argmax(1), "classification"), "l1", 0.3)
    assert "torch-pruning cannot map its channels" in result.left_whole["front.2"]
    assert result.after.params < result.before.params  # the first convolution is cut
