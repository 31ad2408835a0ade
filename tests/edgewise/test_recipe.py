import re

import pytest

from edgewise.board.errors import RecipeError
from edgewise.recipe import load_recipe, parse_recipe


def test_default_recipe_has_the_three_reference_models():
    recipe = load_recipe()
    assert [m.name for m in recipe.models] == ["digits-mlp", "digits-cnn", "rail-net"]
    assert recipe.models[2].data.name == "rail"


def test_zoo_reference_fields_can_be_overridden():
    recipe = parse_recipe({"models": [{"zoo": "digits-mlp", "name": "small", "arch_args": {"hidden": [32]}}]})
    entry = recipe.models[0]
    assert (entry.name, entry.arch, entry.arch_args) == ("small", "mlp", {"hidden": [32]})


def test_data_shorthand_and_full_form():
    recipe = parse_recipe({"models": [
        {"name": "a", "arch": "lenet", "data": "digits"},
        {"name": "b", "arch": "railnet", "data": {"name": "rail", "size": 32, "train": 8}},
    ]})
    assert recipe.models[1].data.size == 32


@pytest.mark.parametrize(("recipe", "field", "given"), [
    ({"models": [{"name": "a", "arch": "alexnet9", "data": "digits"}]}, "models.0.arch", "alexnet9"),
    ({"models": [{"name": "a", "arch": "mlp", "data": "digits", "train": {"epochs": -1}}]},
     "models.0.train.epochs", "-1"),
    ({"models": [{"name": "a", "arch": "mlp", "data": "digits", "colour": "red"}]}, "models.0.colour", "red"),
    ({"models": [{"name": "a", "arch": "mlp", "data": {"name": "rail", "size": 8}}]}, "models.0.data.rail.size", "8"),
    ({"models": [{"zoo": "digits-xl"}]}, "models.0", "digits-xl"),
    ({"models": []}, "models", "[]"),
])
def test_bad_fields_are_named_with_what_was_given(recipe, field, given):
    with pytest.raises(RecipeError) as info:
        parse_recipe(recipe, "r.yaml")
    message = str(info.value)
    assert f"'{field}'" in message and given in message and "\n" not in message


def test_duplicate_model_names_are_refused():
    with pytest.raises(RecipeError, match="repeated: a"):
        parse_recipe({"models": [{"name": "a", "arch": "mlp", "data": "digits"}] * 2})


def test_unreadable_recipes(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(RecipeError, match="YAML mapping"):
        load_recipe(bad)


def test_prune_and_expert_sections():
    recipe = parse_recipe({"models": [{"zoo": "rail-net", "prune": {"criterion": "taylor", "rate": 0.4},
                                       "experts": [{"name": "r", "classes": ["rail"]}, {"name": "s", "classes": [6]}],
                                       "expert_unions": [["r", "s"]]}]})
    entry = recipe.models[0]
    assert entry.prune.criterion == "taylor" and entry.experts[1].classes == [6]


@pytest.mark.parametrize(("prune", "field"), [
    ({"criterion": "vibes"}, "models.0.prune.criterion"),
    ({"rate": 1.0}, "models.0.prune.rate"),
    ({"rate": -0.2}, "models.0.prune.rate"),
    ({"schedule": "weekly"}, "models.0.prune.schedule"),
])
def test_bad_prune_fields(prune, field):
    with pytest.raises(RecipeError, match=f"'{field}'"):
        parse_recipe({"models": [{"zoo": "digits-cnn", "prune": prune}]})


def test_expert_unions_must_name_experts():
    with pytest.raises(RecipeError, match="expert union"):
        parse_recipe({"models": [{"zoo": "rail-net", "experts": [{"name": "r", "classes": ["rail"]}],
                                  "expert_unions": [["r", "x"]]}]})


def test_quantize_section_accepts_lambda_and_needs_it_for_encode():
    recipe = parse_recipe({"models": [{"zoo": "digits-mlp", "quantize": {"method": "ecq", "lambda": 0.3},
                                       "encode": True}]})
    assert recipe.models[0].quantize.lam == 0.3
    with pytest.raises(RecipeError, match="add a quantize section"):
        parse_recipe({"models": [{"zoo": "digits-mlp", "encode": True}]})
    with pytest.raises(RecipeError, match=re.escape("'models.0.quantize.lambda'")):
        parse_recipe({"models": [{"zoo": "digits-mlp", "quantize": {"lambda": -1}}]})
    with pytest.raises(RecipeError, match=re.escape("'models.0.quantize.bits'")):
        parse_recipe({"models": [{"zoo": "digits-mlp", "quantize": {"bits": 1}}]})


@pytest.mark.parametrize(("section", "needed"), [("encode", "quantize"), ("emulate", "quantize"),
                                                 ("bench", "export"), ("deploy", "export")])
def test_stages_name_the_section_they_need(section, needed):
    value = True if section == "encode" else {}
    with pytest.raises(RecipeError, match=f"add a {needed} section"):
        parse_recipe({"models": [{"zoo": "digits-mlp", section: value}]})


def test_emulation_needs_weights_of_4_bits_or_fewer():
    with pytest.raises(RecipeError, match=r"quantize\.bits is 8"):
        parse_recipe({"models": [{"zoo": "digits-mlp", "quantize": {"method": "uniform", "bits": 8}, "emulate": {}}]})
    with pytest.raises(RecipeError, match=r"sweep configuration \{.quantize\.bits.: 8\}"):
        parse_recipe({"models": [{"zoo": "digits-mlp", "quantize": {"method": "uniform", "bits": 4}, "emulate": {}}],
                      "sweep": {"quantize.bits": [4, 8]}})
