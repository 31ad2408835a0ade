import pytest
import torch
from torch import nn

from edgewise.board.errors import UserError
from edgewise.compress.budget import LatencyMeter
from edgewise.compress.criteria.base import Criterion
from edgewise.compress.graph import PruningError
from edgewise.compress.model_stats import measure_cost
from edgewise.compress.pruning import Pruner, apply_plan, prune
from edgewise.compress.ranking import Ranking
from edgewise.core.modelio import load_model, save_model
from edgewise.zoo.models import build_model

ZOO = [("mlp", (1, 8, 8), 10, False), ("lenet", (1, 8, 8), 10, False), ("vgg", (1, 8, 8), 10, False),
       ("resnet", (3, 16, 16), 10, False), ("mobilenetv2", (3, 16, 16), 10, False),
       ("railnet", (3, 32, 32), 7, True)]
TORCHVISION = [("torchvision:resnet18", (3, 32, 32), 10, False), ("torchvision:mobilenet_v2", (3, 32, 32), 10, False),
               ("torchvision:deeplabv3_mobilenet_v3_large", (3, 64, 64), 7, True)]


@pytest.mark.parametrize(("arch", "shape", "classes", "seg"), ZOO + TORCHVISION)
def test_channels_are_physically_removed(arch, shape, classes, seg, reference, tmp_path):
    torch.manual_seed(0)
    model = build_model(arch, shape, classes).eval()
    ref = reference(shape, classes, segmentation=seg)
    result = prune(model, ref, "lrp", 0.5)
    pruned = result.model
    assert result.after.params < 0.7 * result.before.params
    assert result.after.macs < result.before.macs
    x = ref.x[:2]
    assert pruned(x).shape == model(x).shape
    # real tensors shrank: some weight has fewer output channels than the original
    shrunk = [r for r in result.layers if r["channels_after"] < r["channels_before"]]
    assert shrunk and all(r["weight_shape_after"][0] < r["weight_shape_before"][0] for r in shrunk
                          if "Transpose" not in r["kind"])
    assert sum(p.numel() for p in pruned.parameters()) == result.after.params
    # the pruned model is an ordinary module: it saves and reloads with its smaller shapes
    save_model(pruned, tmp_path / "p.pt", {})
    reloaded, _ = load_model(tmp_path / "p.pt")
    assert torch.equal(reloaded(x), pruned(x))
    assert model(x).shape == pruned(x).shape  # the original is left untouched
    assert sum(p.numel() for p in model.parameters()) == result.before.params


class Fixed(Criterion):
    """Scores each channel by its index (or the reverse), so the expected survivors are known."""

    name = "fixed"

    def __init__(self, reverse=False):
        self.reverse = reverse

    def scores(self, model, names, ref):
        modules = dict(model.named_modules())
        out = {}
        for n in names:
            c = modules[n].weight.shape[0]
            s = torch.arange(c, dtype=torch.float32) + 1
            out[n] = s.flip(0) if self.reverse else s
        return out


def test_the_top_scored_channels_are_kept(reference):
    model = build_model("mlp", (1, 8, 8), 10, hidden=[8, 6]).eval()
    ref = reference((1, 8, 8))
    result = prune(model, ref, Fixed(), 0.5, ranking=Ranking(scope="layer"))
    assert result.plan == {"layers.1": [4, 5, 6, 7], "layers.3": [3, 4, 5]}
    original = model.layers[1].weight
    assert torch.equal(result.model.layers[1].weight, original[[4, 5, 6, 7]])
    reverse = prune(model, ref, Fixed(reverse=True), 0.5, ranking=Ranking(scope="layer"))
    assert reverse.plan == {"layers.1": [0, 1, 2, 3], "layers.3": [0, 1, 2]}


def test_residual_coupled_layers_are_cut_at_identical_indices(reference):
    torch.manual_seed(0)
    model = build_model("resnet", (3, 16, 16), 10).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
    result = prune(model, reference((3, 16, 16)), "l1", 0.5)
    # the stem and the first stage's conv2 feed the same identity residual add: one group
    assert "stem.0" in result.plan
    kept = result.plan["stem.0"]
    pruned = result.model
    assert torch.equal(pruned.stem[1].weight, model.stem[1].weight[kept])
    assert torch.equal(pruned.stages[0].bn2.weight, model.stages[0].bn2.weight[kept])
    assert pruned.stages[0].conv2.weight.shape[0] == len(kept)


def test_output_layer_is_left_alone_and_min_channels_hold(reference):
    model = build_model("lenet", (1, 8, 8), 10).eval()
    result = prune(model, reference((1, 8, 8)), "random", 0.9, ranking=Ranking(scope="layer", min_channels=4))
    rows = {r["layer"]: r for r in result.layers}
    assert rows["classifier.3"]["channels_after"] == 10 and not rows["classifier.3"]["prunable"]
    assert all(r["channels_after"] >= 4 for r in result.layers)


def test_round_to_keeps_multiples(reference):
    model = build_model("vgg", (1, 8, 8), 10).eval()
    result = prune(model, reference((1, 8, 8)), "l1", 0.37, ranking=Ranking(round_to=8))
    for r in result.layers:
        if r["prunable"] and r["channels_after"] < r["channels_before"]:
            assert r["channels_after"] % 8 == 0


def test_ignored_layers_keep_their_channels(reference):
    model = build_model("lenet", (1, 8, 8), 10).eval()
    result = prune(model, reference((1, 8, 8)), "l1", 0.5, ignore=("features.0",))
    rows = {r["layer"]: r for r in result.layers}
    assert rows["features.0"]["channels_after"] == rows["features.0"]["channels_before"]
    with pytest.raises(PruningError, match="not found"):
        prune(model, reference((1, 8, 8)), "l1", 0.5, ignore=("features.99",))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_invalid_rates_are_refused(rate, reference):
    with pytest.raises(UserError, match=r"rate must be in \[0, 1\)"):
        prune(build_model("mlp", (1, 8, 8), 10), reference((1, 8, 8)), "l1", rate)


def test_unknown_criterion_and_schedule(reference):
    model, ref = build_model("mlp", (1, 8, 8), 10), reference((1, 8, 8))
    with pytest.raises(UserError, match="unknown pruning criterion 'saliencee'"):
        prune(model, ref, "saliencee", 0.5)
    with pytest.raises(UserError, match="unknown pruning schedule"):
        prune(model, ref, "l1", 0.5, schedule="weekly")


class Grouped(nn.Module):
    """A ResNeXt-style block: grouped convolutions whose channel groups must shrink alike, a GroupNorm of 4 groups."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.norm = nn.GroupNorm(4, 16)
        self.grouped = nn.Conv2d(16, 16, 3, padding=1, groups=4)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.expand = nn.Conv2d(16, 24, 1, groups=2)
        self.head = nn.Linear(24, 4)

    def forward(self, x):
        x = torch.relu(self.norm(self.stem(x)))
        x = torch.relu(self.depthwise(torch.relu(self.grouped(x))))
        return self.head(torch.relu(self.expand(x)).mean((2, 3)))


@pytest.mark.parametrize("criterion", ["l1", "lrp", "taylor"])
def test_grouped_convolutions_lose_whole_units_in_every_group(criterion, reference):
    torch.manual_seed(0)
    model = Grouped().eval()
    ref = reference((3, 8, 8), classes=4)
    result = prune(model, ref, criterion, 0.5)
    pruned = result.model
    assert pruned(ref.x[:2]).shape == (2, 4)
    # every grouped layer keeps its groups and equal channels per group; the depthwise one stays depthwise
    assert pruned.norm.num_groups == 4 and pruned.stem.out_channels % 4 == 0
    assert pruned.grouped.groups == 4 and pruned.grouped.in_channels % 4 == 0 and pruned.grouped.out_channels % 4 == 0
    assert pruned.depthwise.groups == pruned.depthwise.in_channels == pruned.depthwise.out_channels
    assert pruned.expand.groups == 2 and pruned.expand.out_channels % 2 == 0
    assert result.channel_rate == pytest.approx(0.5, abs=4 / 56)  # the rate counts channels, a unit is up to 4
    # repair refits the layers that read cut channels, grouped ones a group at a time, where it helps
    reconstruct = result.repairs[0]["parts"][0]
    def reads(net, name):
        layer = net.get_submodule(name)
        return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels

    narrower = [n for n in ("grouped", "depthwise", "expand", "head") if reads(pruned, n) < reads(model, n)]
    assert reconstruct["part"] == "reconstruct" and reconstruct["layers"] == narrower
    assert result.repairs[0]["error_after"] <= result.repairs[0]["error_before"]
    # the plan rebuilds the same cut
    rebuilt = apply_plan(model, result.plan, ref.x[:1])
    assert torch.equal(rebuilt(ref.x[:3]), prune(model, ref, criterion, 0.5, repair=None).model(ref.x[:3]))


class DictOutput(nn.Module):
    """A segmentation-style network: a dict with the main map under 'out' and an auxiliary one."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.out = nn.Conv2d(16, 5, 1)
        self.aux = nn.Conv2d(16, 5, 1)

    def forward(self, x):
        features = self.body(x)
        return {"out": self.out(features), "aux": self.aux(features)}


@pytest.mark.parametrize("output", [None, "aux", lambda out: out["out"] + out["aux"]])
def test_a_dict_output_is_scored_by_the_named_tensor_and_kept(output, reference):
    torch.manual_seed(0)
    model = DictOutput().eval()
    ref = reference((3, 8, 8), classes=5, segmentation=True)
    result = prune(model, ref, "lrp", 0.5, output=output)
    out = result.model(ref.x[:2])
    assert isinstance(out, dict) and {k: v.shape for k, v in out.items()} == {"out": (2, 5, 8, 8), "aux": (2, 5, 8, 8)}
    assert result.model.body[0].out_channels < 16
    assert type(result.model) is DictOutput and type(model) is DictOutput


def test_an_unknown_output_name_is_refused(reference):
    with pytest.raises(UserError, match="the model's output has no 'logits'"):
        prune(DictOutput().eval(), reference((3, 8, 8), classes=5, segmentation=True), "l1", 0.5, output="logits")


class Fading(nn.Module):
    """Two hidden layers; the second's weights are 1000x smaller, so a global l1 ranking wants all of it."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = nn.Linear(64, 40), nn.Linear(40, 40), nn.Linear(40, 4)
        with torch.no_grad():
            self.b.weight.mul_(1e-3)

    def forward(self, x):
        return self.head(torch.relu(self.b(torch.relu(self.a(x.flatten(1))))))


def test_no_layer_is_cut_below_its_floor(reference):
    torch.manual_seed(0)
    ref = reference((1, 8, 8), classes=4)

    def kept(rate=0.6, **ranking):
        return prune(Fading().eval(), ref, "l1", rate, ranking=Ranking(normalization="none", **ranking)).model.b

    assert kept().out_features == 4  # 90% at most may go: ceil(0.1 x 40)
    assert kept(max_layer_rate=1.0).out_features == 1
    assert kept(0.45, max_layer_rate=0.5).out_features == 20
    with pytest.raises(UserError, match="above the most any layer may lose"):
        kept(0.6, max_layer_rate=0.5)


class Tokens(nn.Module):
    """A transformer-style MLP on (batch, tokens, features): linear layers whose channels are the LAST axis."""

    def __init__(self):
        super().__init__()
        self.embed, self.fc1, self.fc2, self.head = nn.Linear(8, 16), nn.Linear(16, 32), nn.Linear(32, 16), \
            nn.Linear(16, 4)

    def forward(self, x):
        tokens = self.embed(x.flatten(2).transpose(1, 2))
        tokens = tokens + self.fc2(torch.relu(self.fc1(tokens)))
        return self.head(tokens.mean(1))


@pytest.mark.parametrize("criterion", ["apoz", "hrank", "activation", "lrp", "gradient"])
def test_token_layers_are_scored_per_feature(criterion, reference):
    torch.manual_seed(0)
    ref = reference((8, 4, 4), classes=4)
    result = prune(Tokens().eval(), ref, criterion, 0.5)
    assert result.model(ref.x[:2]).shape == (2, 4)
    assert result.model.fc1.out_features < 32 and result.model.fc2.in_features == result.model.fc1.out_features


def test_iterative_schedule_steps_and_finetunes(reference):
    model = build_model("lenet", (1, 8, 8), 10).eval()
    calls = []
    result = prune(model, reference((1, 8, 8)), "l1", 0.2, schedule="iterative", step=0.05,
                   finetune=lambda m: calls.append(1), evaluate=lambda m: 0.5)
    assert len(calls) == 4 and [h["step"] for h in result.history] == [0, 1, 2, 3, 4]
    rates = [h["channel_rate"] for h in result.history]
    assert rates == sorted(rates) and rates[-1] == pytest.approx(0.2, abs=0.01)
    assert all(h["score"] == 0.5 for h in result.history)


def test_a_pruner_steps_through_its_schedule_and_gives_what_prune_gives(reference):
    model = build_model("lenet", (1, 8, 8), 10).eval()
    ref = reference((1, 8, 8))
    pruner = Pruner(model, ref, "l1", 0.2, "iterative", step=0.1)
    assert not pruner.done and [h["step"] for h in pruner.history] == [0]
    widths = []
    while pruner.step():
        widths.append(sum(len(kept) for kept in pruner.plan.values()))
    assert pruner.done and not pruner.step()  # a finished pruner cuts nothing more
    assert widths == sorted(widths, reverse=True) and len(widths) == 2
    stepped, whole = pruner.result(), prune(model, ref, "l1", 0.2, "iterative", step=0.1)
    assert stepped.plan == whole.plan and stepped.history == whole.history
    x = ref.x[:4]
    assert torch.equal(stepped.model(x), whole.model(x))


def test_adaptive_schedule_converges_and_reports_the_prediction(reference):
    model = build_model("mlp", (1, 8, 8), 10, hidden=[100]).eval()
    result = prune(model, reference((1, 8, 8)), "random", schedule="adaptive", sf=0.3)
    prediction = result.prediction
    assert prediction["groups"][0]["c0"] == 100
    assert prediction["groups"][0]["predicted"] == pytest.approx(40.14, abs=0.01)
    assert 1 <= prediction["observed_total"] < 100
    assert result.history[-1]["channels"] == prediction["observed_total"]


def test_apply_plan_reproduces_a_pruning(reference):
    model = build_model("vgg", (1, 8, 8), 10).eval()
    ref = reference((1, 8, 8))
    result = prune(model, ref, "l2", 0.5, repair=None)  # the plan is the cut; repair then changes weights, not shapes
    again = apply_plan(model, result.plan, ref.x[:1])
    x = ref.x[:4]
    assert torch.allclose(again(x), result.model(x))


class Shuffled(nn.Module):
    """A ShuffleNet unit: the channels are viewed as (2, C/2), transposed and flattened back."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), nn.Linear(8, 4)

    def forward(self, x):
        x = self.a(x)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.head(self.b(x).mean((2, 3)))


def test_a_channel_shuffle_keeps_the_widths_it_fixes_and_the_rest_is_pruned(reference):
    result = prune(Shuffled().eval(), reference((3, 4, 4), classes=4), "l1", 0.5)
    rows = {r["layer"]: r for r in result.layers}
    assert rows["a"]["channels_after"] == 8 and rows["b"]["channels_after"] == 4
    assert result.left_whole["a"].startswith("its channels enter the channel shuffle in the model's forward")


def test_shufflenet_is_pruned_inside_its_branches(reference):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.shufflenet_v2_x0_5(num_classes=4).eval()
    ref = reference((3, 32, 32), classes=4, n=4)
    result = prune(model, ref, "lrp", 0.3, ranking=Ranking(scope="layer"))
    rows = {r["layer"]: r for r in result.layers}
    # a unit's 1x1 -> depthwise -> 1x1 width is cut; what enters a shuffle, or a depthwise conv reads from one, is not
    assert rows["stage3.1.branch2.0"]["channels_after"] < rows["stage3.1.branch2.0"]["channels_before"]
    assert rows["stage3.1.branch2.3"]["channels_after"] == rows["stage3.1.branch2.0"]["channels_after"]
    for layer in ("stage3.1.branch2.5", "stage3.0.branch1.2", "stage3.0.branch1.0"):
        assert rows[layer]["channels_after"] == rows[layer]["channels_before"]
    assert "channel shuffle in stage3.1" in result.left_whole["stage3.1.branch2.5"]
    assert "depthwise convolution reading a channel shuffle" in result.left_whole["stage3.0.branch1.0"]
    assert result.after.params < 0.8 * result.before.params  # ONNX parity: make bench topic coverage


class DetectionHeads(nn.Module):
    """torchvision's SSDlite up to its head: per-anchor class logits and box offsets, before decoding and NMS."""

    def __init__(self):
        super().__init__()
        import torchvision

        self.ssd = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                            num_classes=5)

    def forward(self, x):
        out = self.ssd.head(list(self.ssd.backbone(x).values()))
        return out["cls_logits"], out["bbox_regression"]


def test_a_detector_is_pruned_with_its_heads_kept(reference):
    torch.manual_seed(0)
    model = DetectionHeads().eval()
    ref = reference((3, 320, 320), classes=5, n=2)
    result = prune(model, ref, "l1", 0.3)
    with torch.no_grad():
        want, got = model(ref.x), result.model(ref.x)
    assert [t.shape for t in got] == [t.shape for t in want]
    assert result.after.params < 0.8 * result.before.params
    heads = [r for r in result.layers if r["layer"].endswith(("module_list.0.1", "module_list.5"))]
    assert heads and all(r["channels_after"] == r["channels_before"] for r in heads)  # the output convolutions


def test_yolov8_built_from_its_yaml_prunes_with_split_channels_left_whole(reference):
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=3, verbose=False).eval()
    ref = reference((3, 128, 128), classes=3, n=2)
    result = prune(model, ref, "l1", 0.3, output=lambda out: out[0])
    with torch.no_grad():
        assert result.model(ref.x)[0].shape == model(ref.x)[0].shape == (2, 7, 336)
    assert result.after.params < 0.8 * result.before.params
    assert result.left_whole and all("torch.chunk" in why for why in result.left_whole.values())


def test_a_width_the_model_code_fixes_is_left_whole(reference):
    """torchvision's ViT reshapes by its own hidden_dim: the residual width (with the class token and position
    embedding) cannot shrink, so it is left whole with the reason and the MLP widths are pruned."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                                                 hidden_dim=32, mlp_dim=64, num_classes=4).eval()
    nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts it at zero: no output, no relevance
    ref = reference((3, 32, 32), classes=4, n=8)
    result = prune(model, ref, "lrp", 0.3)
    assert list(result.left_whole) == ["conv_proj"] and "no longer runs" in result.left_whole["conv_proj"]
    assert result.model(ref.x[:2]).shape == (2, 4) and result.model.hidden_dim == 32
    assert result.model.encoder.layers[0].mlp[0].out_features < 64


class FixedWidth(nn.Module):
    """A per-channel offset kept in a buffer: a width out of torch-pruning's sight."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 16, 3, padding=1), nn.Linear(16, 4)
        self.register_buffer("offset", torch.zeros(1, 16, 1, 1))

    def forward(self, x):
        return self.head((self.conv(x) + self.offset).mean((2, 3)))


def test_a_network_whose_only_group_breaks_when_cut_is_a_one_line_error(reference):
    with pytest.raises(PruningError, match=r"no channel of this model can be pruned: 1 group.*conv: the network no "
                                           r"longer runs after removing channels of conv"):
        prune(FixedWidth().eval(), reference((3, 16, 16), classes=4), "l1", 0.5)


class FixedView(nn.Module):
    """The last convolution's width written into a view: torch-pruning cuts it, and the head then gets 16 columns."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.c, self.head = nn.Conv2d(16, 16, 3, padding=1), nn.Linear(16, 4)

    def forward(self, x):
        x = torch.relu(self.c(torch.relu(self.b(torch.relu(self.a(x))))))
        return self.head(x.view(x.shape[0], 16, -1).mean(-1))


@pytest.mark.parametrize("schedule", ["oneshot", "iterative"])
def test_a_group_whose_cut_breaks_the_network_is_left_whole_in_the_same_run(schedule, reference):
    torch.manual_seed(0)
    model, ref = FixedView().eval(), reference((3, 8, 8), classes=4)
    result = prune(model, ref, "l1", 0.3, schedule, step=0.15)
    assert list(result.left_whole) == ["c"] and "no longer runs after removing channels of c" in result.left_whole["c"]
    assert result.model.c.out_channels == 16 and result.plan["c"] == list(range(16))
    assert result.model.a.out_channels < 16 and result.model.b.out_channels < 16
    assert result.model(ref.x[:2]).shape == (2, 4)
    assert result.after.macs < result.before.macs


def test_a_timed_trial_cut_leaves_a_breaking_group_whole_and_the_latency_budget_is_met(reference):
    torch.manual_seed(0)
    model, ref = FixedView().eval(), reference((3, 8, 8), classes=4)
    meter = LatencyMeter(lambda m: measure_cost(m, (3, 8, 8)).macs / 1e6, "test: MACs in millions")
    result = prune(model, ref, "l1", 0.3, unit="latency", latency=meter, repair=None)
    assert list(result.left_whole) == ["c"] and "no longer runs after removing channels of c" in result.left_whole["c"]
    assert result.model.c.out_channels == 16 and result.model(ref.x[:2]).shape == (2, 4)
    assert result.shortfall is None and result.removed("macs") >= 0.3
    assert result.latency["after_ms"] == result.after.macs / 1e6


def test_ghostnet_is_pruned_by_the_channels_its_cheap_operation_doubles(reference):
    """GhostNet concatenates x and a depthwise dw(x): each primary channel feeds two of the block's output channels,
    so the primary layer is the group's root and a cut removes both (rooted at the wider layer, half of them went)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("ghostnet_050", pretrained=False, num_classes=4).eval()
    ref = reference((3, 64, 64), classes=4, n=4)
    result = prune(model, ref, "l1", 0.6, ranking=Ranking(scope="layer"))
    block = result.model.blocks[4][0].ghost1
    assert block.primary_conv[0].out_channels == block.cheap_operation[0].out_channels == 12
    assert result.model(ref.x).shape == (4, 4)
