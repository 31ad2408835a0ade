import torch
from torch import nn

from edgewise.compress.batching import pass_bytes, samples_per_pass
from edgewise.zoo.training import predict


def _net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16 * 16, 4)).eval()


def test_a_pass_holds_every_leaf_output_per_sample():
    total, largest = pass_bytes(_net(), torch.rand(1, 3, 16, 16))
    assert largest == 8 * 16 * 16 * 4 and total == 4 * (3 * 8 * 16 * 16 + 4)  # conv, relu, flatten, linear


def test_a_batch_is_as_many_samples_as_fit_the_budget():
    x = torch.rand(100, 3, 16, 16)
    total, largest = pass_bytes(_net(), x[:1])
    assert samples_per_pass(_net(), x, budget=10 * total) == 10
    assert samples_per_pass(_net(), x, budget=10 * (total + 2 * largest), copies=2) == 10
    assert samples_per_pass(_net(), x, budget=1) == 1 and samples_per_pass(_net(), x, budget=1 << 40) == 100


def test_predict_runs_a_heavy_model_in_smaller_batches_with_the_same_outputs(monkeypatch):
    from edgewise.compress import batching

    model, x, seen = _net(), torch.rand(40, 3, 16, 16), []
    model.register_forward_hook(lambda m, a, out: seen.append(len(a[0])))
    whole = predict(model, x)
    monkeypatch.setattr(batching, "PASS_BUDGET", 7 * pass_bytes(model, x[:1])[0])
    seen.clear()
    assert torch.allclose(predict(model, x), whole) and max(seen[1:]) == 7
