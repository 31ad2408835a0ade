import pytest
import torch
from torch import nn

from edgewise.compress.attention import ExplicitAttention, explicit_attention


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("masks", [False, True])
def test_explicit_attention_computes_what_torch_does(batch_first, masks):
    torch.manual_seed(0)
    torch_attention = nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    mine = ExplicitAttention(torch_attention).eval()
    x = torch.rand(2, 5, 16) if batch_first else torch.rand(5, 2, 16)
    kwargs = {}
    if masks:
        kwargs = {"key_padding_mask": torch.tensor([[False] * 4 + [True], [False] * 5]),
                  "attn_mask": torch.eye(5, dtype=torch.bool).roll(1, 0)}
    want, want_weights = torch_attention(x, x, x, **kwargs)
    got, got_weights = mine(x, x, x, **kwargs)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(got_weights, want_weights, atol=1e-6)
    assert mine(x, x, x, need_weights=False)[1] is None


def test_every_multihead_attention_of_a_model_is_written_out():
    import torchvision

    model = torchvision.models.VisionTransformer(image_size=16, patch_size=8, num_layers=2, num_heads=2, hidden_dim=8,
                                                 mlp_dim=16, num_classes=3).eval()
    x = torch.rand(2, 3, 16, 16)
    want = model(x)
    explicit_attention(model)
    assert not any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    assert sum(isinstance(m, ExplicitAttention) for m in model.modules()) == 2
    assert torch.allclose(model(x), want, atol=1e-5)
