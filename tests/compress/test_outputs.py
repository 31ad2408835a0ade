import pytest
import torch
from torch import nn

from edgewise import compress
from edgewise.compress.outputs import final_squash, scoring


def _saturated(squash: nn.Module) -> nn.Module:
    """A classifier whose head is so large that its final Sigmoid/Softmax gives exactly 0 and 1 in float32."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3), squash).eval()
    with torch.no_grad():
        model[6].weight.mul_(1e7)
    return model


@pytest.mark.parametrize("squash", [nn.Softmax(dim=1), nn.Sigmoid()])
def test_a_final_squash_is_found_and_bypassed_while_scoring(squash):
    model = _saturated(squash)
    x = torch.rand(4, 3, 8, 8)
    assert final_squash(model, x) == "7"
    with scoring(model, x) as scored, torch.no_grad():
        torch.testing.assert_close(scored(x), model[:7](x))
    torch.testing.assert_close(model(x), model[7](model[:7](x)))  # the bypass ends with the block


def test_a_model_without_a_final_squash_is_scored_as_it_is():
    model = _saturated(nn.Identity())
    assert final_squash(model, torch.rand(2, 3, 8, 8)) is None


def test_taylor_scores_a_network_whose_probabilities_saturate():
    """Its probabilities are exactly 0 and 1, so their gradients are 0: before the bypass taylor (on the true
    class's output) gave no layer a score and pruning refused; on the logits every layer scores."""
    model = _saturated(nn.Softmax(dim=1))
    x = torch.rand(12, 3, 8, 8)
    with torch.no_grad():
        probabilities = model(x)
    assert bool(((probabilities == 0) | (probabilities == 1)).all())
    ref = compress.ReferenceSamples(x, probabilities.argmax(1), "classification")
    result = compress.prune(model, ref, "taylor", 0.3, criterion_options={"objective": "output"})
    assert result.after.params < result.before.params
