"""The stage table drives the pipeline's order, the names --force takes and the recipe's checks."""

import pytest

from edgewise import pipeline
from edgewise.board.errors import RecipeError, UserError
from edgewise.force import force_policy
from edgewise.recipe import parse_recipe
from edgewise.stages.table import STAGE_NAMES, STAGES, Stage


def test_force_takes_the_table_names_in_their_order():
    with pytest.raises(UserError) as caught:
        force_policy(["pune"], ["a"])
    assert ", ".join(STAGE_NAMES) in caught.value.fix
    policy = force_policy(["quantize"], ["a"])
    assert [s for s in STAGE_NAMES if policy(s, "a")] == list(STAGE_NAMES[STAGE_NAMES.index("quantize"):])


def test_the_recipe_checks_come_from_the_table():
    model = {"name": "m", "arch": "mlp", "data": "digits"}
    with pytest.raises(RecipeError, match="encode codes quantized weights; add a quantize section"):
        parse_recipe({"models": [{**model, "encode": True}]})
    with pytest.raises(RecipeError, match="bench measures the exported ONNX files; add a export section"):
        parse_recipe({"models": [{**model, "bench": {}}]})
    onnx = {"name": "o", "onnx": "m.onnx", "data": "digits"}
    with pytest.raises(RecipeError, match="can only run prune, fold, quantize, encode, export, emulate, bench, not "
                                          "experts"):
        parse_recipe({"models": [{**onnx, "experts": [{"name": "e", "classes": [0]}]}]})
    parse_recipe({"models": [{**onnx, "emulate": {}, "bench": {}}]})  # the ONNX file is the exported model
    with pytest.raises(RecipeError, match="encode codes quantized weights"):  # compressing it, the needs hold
        parse_recipe({"models": [{**onnx, "prune": {}, "encode": True}]})


class _Recorded(Stage):
    @property
    def function(self):
        return lambda state, config: state.append((self.name, config))


def test_the_pipeline_runs_the_switched_on_stages_in_table_order(monkeypatch):
    recipe = parse_recipe({"models": [{"name": "m", "arch": "mlp", "data": "digits", "quantize": {"bits": 3},
                                       "prune": {"rate": 0.2}, "export": {}}]})
    table = tuple(_Recorded(s.name, s.section, s.run, s.needs, s.why, s.sources) for s in STAGES)
    monkeypatch.setattr(pipeline, "STAGES", table)

    class State(list):
        entry = recipe.models[0]
        running = ""

    calls = State()
    pipeline.run_model(calls)
    assert [name for name, _ in calls] == ["train", "prune", "quantize", "export"]
    assert calls[2][1].bits == 3
