import pytest
import torch
import torchvision
from torch import nn

from edgewise.compress import group_walk
from edgewise.compress.attention import explicit_attention
from edgewise.compress.graph import ChannelGraph, PruningError
from edgewise.compress.heads import remove_heads
from edgewise.compress.pruning import apply_plan, prune
from edgewise.compress.ranking import Ranking
from edgewise.export.checks import verify
from edgewise.export.onnx_export import to_onnx


def _vit():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                                                 hidden_dim=32, mlp_dim=64, num_classes=4).eval()
    nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts it at zero: no output, no relevance
    return model


def _timm_vit():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.models.vision_transformer.VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2,
                                                            num_heads=4, num_classes=4).eval()


def _without_head(attention: nn.Module, head: int, out_proj: str) -> None:
    """What removing `head` computes: the output projection no longer reads its channels."""
    d = getattr(attention, out_proj).in_features // attention.num_heads
    with torch.no_grad():
        getattr(attention, out_proj).weight[:, head * d:(head + 1) * d] = 0


@pytest.mark.parametrize(("build", "attention", "out_proj"), [
    pytest.param(lambda: explicit_attention(_vit()), "encoder.layers.encoder_layer_0.self_attention", "out_proj",
                 id="torch-multihead-attention"),
    pytest.param(_timm_vit, "blocks.0.attn", "proj", id="timm-fused-qkv"),
])
def test_removing_a_head_computes_what_the_network_without_its_contribution_computes(build, attention, out_proj):
    model = build()
    zeroed = build()
    x = torch.rand(3, 3, 32, 32)
    remove_heads(dict(model.named_modules())[attention], [2])
    _without_head(dict(zeroed.named_modules())[attention], 2, out_proj)
    module = dict(model.named_modules())[attention]
    assert module.num_heads == 3 and getattr(module, out_proj).in_features == 24
    with torch.no_grad():
        torch.testing.assert_close(model(x), zeroed(x), rtol=1e-5, atol=1e-6)


def test_vit_heads_are_pruned_physically_and_export_with_parity(reference, tmp_path):
    """torchvision's ViT uses nn.MultiheadAttention, which fixes its inner width: written out, its heads go whole
    (q, k, v rows and out_proj columns) and the head count follows; ONNX Runtime computes the same."""
    model = _vit()
    ref = reference((3, 32, 32), classes=4, n=8)
    result = prune(model, ref, "lrp", 0.5, ranking=Ranking(scope="layer"), repair=None)  # the plan's cut, as cut
    attention = result.model.encoder.layers[0].self_attention
    assert attention.num_heads == 2
    assert attention.q.weight.shape == (16, 32) and attention.out_proj.weight.shape == (32, 16)
    assert len(result.plan["encoder.layers.encoder_layer_0.self_attention"]) == 16
    to_onnx(result.model, ref.x[:1], tmp_path / "vit.onnx")
    assert verify(tmp_path / "vit.onnx", result.model, ref.x[:4])["rel_diff"] < 1e-4
    again = apply_plan(model, result.plan, ref.x[:1])
    with torch.no_grad():
        torch.testing.assert_close(again(ref.x), result.model(ref.x))


def test_timm_vit_prunes_heads_mlp_and_embedding_width(reference):
    model = _timm_vit()
    ref = reference((3, 32, 32), classes=4, n=8)
    result = prune(model, ref, "l1", 0.5, ranking=Ranking(scope="layer"))
    block = result.model.blocks[0]
    assert block.attn.num_heads == 2 and block.attn.qkv.out_features == 3 * 16
    assert block.mlp.fc1.out_features == 64 and result.model.cls_token.shape[-1] == 16
    assert result.model(ref.x[:2]).shape == (2, 4) and not result.left_whole


def test_heads_whose_width_the_code_fixes_are_left_whole_with_the_reason(reference):
    """torchvision's Swin derives the head width from the block's input width: its heads stay, its MLPs shrink."""
    torch.manual_seed(0)
    model = torchvision.models.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 4],
                                               window_size=[4, 4], num_classes=4).eval()
    ref = reference((3, 32, 32), classes=4, n=4)
    result = prune(model, ref, "l1", 0.3, ranking=Ranking(scope="layer"))
    assert "the model no longer runs with one head fewer" in result.left_whole["features.1.0.attn"]
    assert result.model.features[1][0].attn.num_heads == 2
    assert result.model.features[1][0].mlp[0].out_features < 64


class _Flattened(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8 * 8 * 8, 4)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


def test_a_group_whose_index_mapping_explodes_is_left_whole(monkeypatch):
    """Swin's window partitions make torch-pruning's index lists grow to tens of gigabytes; past a bound the group
    is left whole instead of exhausting memory (here the bound is lowered below a flatten's 8 x 64 indices)."""
    monkeypatch.setattr(group_walk, "MAX_GROUP_INDICES", 100)
    graph = ChannelGraph(_Flattened().eval(), torch.rand(1, 3, 8, 8))
    assert graph.groups == [] and "index mapping" in graph.skipped["conv"]
    monkeypatch.setattr(group_walk, "MAX_GROUP_INDICES", 1000)
    assert [g.name for g in ChannelGraph(_Flattened().eval(), torch.rand(1, 3, 8, 8)).groups] == ["conv"]


def test_an_output_that_depends_on_nothing_is_a_one_line_error(reference):
    """torchvision's ViT head starts at zero: no relevance reaches any layer, and pruning says so."""
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2,
                                                 hidden_dim=16, mlp_dim=32, num_classes=4).eval()
    with pytest.raises(PruningError, match="lrp gives no layer a score"):
        prune(model, reference((3, 32, 32), classes=4, n=4), "lrp", 0.3)


def test_a_group_whose_walk_passes_its_bound_is_left_whole(monkeypatch):
    """PP-OCRv4's attention, converted from ONNX, sent torch-pruning's group walk on for minutes; past a bound on its
    steps the group is left whole with the reason (here the bound is lowered below the conv's group)."""
    monkeypatch.setattr(group_walk, "MAX_GROUP_STEPS", 1)
    graph = ChannelGraph(_Flattened().eval(), torch.rand(1, 3, 8, 8))
    assert graph.groups == [] and "walk" in graph.skipped["conv"]
