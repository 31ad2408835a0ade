import pytest
import torch
from torch import nn

from edgewise.compress.lrp_ops import ProductRule, SumRule
from edgewise.compress.reference import ReferenceSamples
from edgewise.compress.relevance import layer_relevance


def test_a_sum_shares_relevance_by_contribution():
    a, b = torch.tensor([1.0, 3.0]), torch.tensor([3.0, 1.0])
    ra, rb = SumRule().relevance([a, b], a + b, torch.tensor([4.0, 8.0]))
    assert torch.allclose(ra, torch.tensor([1.0, 6.0]), atol=1e-5)
    assert torch.allclose(rb, torch.tensor([3.0, 2.0]), atol=1e-5)


def test_a_gate_gets_no_relevance_and_equal_factors_share_it():
    signal, gate = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 1, 1)
    r = torch.rand(2, 3, 4, 4)
    to_gate, to_signal = ProductRule().relevance([gate, signal], gate * signal, r)
    assert torch.equal(to_signal, r) and not to_gate.any()
    a, b = torch.rand(5), torch.rand(5)
    ra, rb = ProductRule().relevance([a, b], a * b, torch.ones(5))
    assert torch.equal(ra, rb) and float(ra.sum()) == pytest.approx(2.5)


class SEBlock(nn.Module):
    """MobileNetV3/EfficientNet's pattern: a residual block whose channels are scaled by a squeeze-excite gate."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.squeeze, self.excite = nn.Linear(8, 4, bias=False), nn.Linear(4, 8, bias=False)
        self.head = nn.Linear(8, 4, bias=False)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        y = torch.relu(self.conv(x))
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(y.mean((2, 3))))))
        y = y * gate[:, :, None, None]
        y += x
        return self.head(nn.functional.gelu(y).mean((2, 3)))


class TinyTransformer(nn.Module):
    """A pre-norm transformer block with torch's MultiheadAttention and an MLP, on (batch, tokens, features)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, 16, bias=False)
        self.norm1, self.norm2 = nn.LayerNorm(16), nn.LayerNorm(16)
        self.attention = nn.MultiheadAttention(16, 4, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        t = self.embed(x.flatten(2).transpose(1, 2))
        h = self.norm1(t)
        t = t + self.attention(h, h, h, need_weights=False)[0]
        t = t + self.mlp(self.norm2(t))
        return self.head(t.mean(1))


def _vit():
    import torchvision

    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32,
                                                mlp_dim=64, num_classes=4)


def _timm_vit():
    timm = pytest.importorskip("timm")
    return timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2,
                                                            num_heads=4, num_classes=4)


def _torchvision(name, **kwargs):
    import torchvision

    return lambda: torchvision.models.get_model(name, weights=None, num_classes=4, **kwargs)


def _calibrated(build, shape):
    """BatchNorm variances from random inputs: with the initial ones a deep random network's signal fades to 1e-6,
    where the epsilon rule's stabiliser absorbs a visible share of the relevance (ShuffleNet). The means stay 0, so
    that a merged BatchNorm adds no bias."""

    def built():
        model = build()
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for norm in norms:
            norm.momentum = None
        with torch.no_grad():
            model.train()(torch.rand(8, *shape))
        for norm in norms:
            norm.running_mean.zero_()
        return model

    return built


def _without_biases(model):
    """Biases, class tokens and position embeddings absorb or add relevance; without them it is conserved exactly."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or any(k in name for k in ("class_token", "cls_token", "pos_embed")):
                p.zero_()
            elif not p.any():
                nn.init.normal_(p, std=0.02)
    return model


ARCHITECTURES = [
    pytest.param(SEBlock, (3, 8, 8), "stem", id="residual-se-gate"),
    pytest.param(TinyTransformer, (8, 4, 4), "embed", id="transformer"),
    pytest.param(_vit, (3, 32, 32), "conv_proj", id="torchvision-vit"),
    pytest.param(_timm_vit, (3, 32, 32), "patch_embed.proj", id="timm-vit"),
    pytest.param(_torchvision("resnet18"), (3, 32, 32), "conv1", id="torchvision-resnet18"),
    pytest.param(_torchvision("convnext_tiny"), (3, 32, 32), "features.0.0", id="torchvision-convnext",
                 marks=pytest.mark.slow),
    pytest.param(_torchvision("swin_t"), (3, 64, 64), "features.0.0", id="torchvision-swin", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("build", "shape", "first"), ARCHITECTURES)
def test_relevance_is_conserved_from_output_to_input(build, shape, first):
    """Each sample's class starts with one unit of relevance; residual sums, gates, attention, layer norms and
    means pass it on without loss or gain, so the input (and the first layer) holds one unit per sample."""
    torch.manual_seed(0)
    model = _without_biases(build().eval())
    ref = ReferenceSamples(torch.rand(4, *shape), torch.tensor([0, 1, 2, 3]))
    relevance, input_relevance = layer_relevance(model, ref, {first}, absolute=False)
    assert input_relevance.tolist() == pytest.approx([1.0] * 4, rel=1e-3)
    assert float(relevance[first].sum()) == pytest.approx(4.0, rel=1e-3)


def test_relevance_is_conserved_through_channel_shuffles_splits_and_concatenations():
    """ShuffleNetV2: chunk, cat and the shuffle's view/transpose only move relevance. Under the epsilon rule (z+ is
    not conserving on a depthwise convolution whose few positive taps all meet zeros) each sample's unit reaches the
    input whole."""
    torch.manual_seed(0)
    model = _without_biases(_calibrated(_torchvision("shufflenet_v2_x0_5"), (3, 32, 32))().eval())
    ref = ReferenceSamples(torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    relevance, input_relevance = layer_relevance(model, ref, {"conv1.0", "stage3.0.branch2.5"}, absolute=False,
                                                 rules={"conv": "epsilon"})
    assert input_relevance.tolist() == pytest.approx([1.0] * 4, rel=1e-3)
    assert float(relevance["conv1.0"].sum()) == pytest.approx(4.0, rel=1e-3)
