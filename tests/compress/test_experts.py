import torch

from edgewise.compress.experts import combine, derive_expert, expert_table, path_similarity, union
from edgewise.zoo.models import build_model


def test_union_and_path_similarity():
    plans = {"a": {"g": [0, 1, 2]}, "b": {"g": [1, 2, 3]}}
    assert union(plans) == {"g": [0, 1, 2, 3]}
    assert path_similarity([{0, 1, 2}, {1, 2, 3}]) == 0.5
    assert path_similarity([{1}, {1}]) == 1.0


def test_experts_differ_by_class_and_combine(reference):
    torch.manual_seed(0)
    model = build_model("railnet", (3, 32, 32), 7).eval()
    ref = reference((3, 32, 32), 7, segmentation=True)
    first = derive_expert(model, ref, (0,), 0.5)
    second = derive_expert(model, ref, (6,), 0.5)
    assert first.plan != second.plan
    combined = combine(model, {"first": first.plan, "second": second.plan}, ref.x[:1])
    params = sum(p.numel() for p in combined.parameters())
    assert first.after.params <= params <= first.before.params
    rows = expert_table(model, {"first": first.plan, "second": second.plan}, ref.x[:1])
    assert rows and all(0.0 <= r["path_similarity"] <= 1.0 for r in rows)
    assert set(rows[0]["pruning_rate"]) == {"first", "second"}
    assert sum(r["parameter_share"] for r in rows) < 1.0
