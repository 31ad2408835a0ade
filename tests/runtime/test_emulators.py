"""Emulated accelerators are plug-ins: a target profile of kind emulated names its cost model in the registry."""

import numpy as np
import pytest

from edgewise.base.records import QuantizedLayer
from edgewise.board.errors import RecipeError, UserError
from edgewise.recipe import parse_recipe
from edgewise.runtime import IntegerMLP, emulators


def _mlp():
    levels = np.random.default_rng(0).integers(-8, 8, (4, 6)).astype(np.int8)
    return IntegerMLP.from_records([QuantizedLayer("l", "Linear", levels, np.float32(0.1), 4, -8, 7)],
                                   np.ones((2, 6)))


def test_the_emulated_targets_are_the_profiles_of_kind_emulated():
    assert emulators.emulated_targets() == ["fantastic4-asic", "fantastic4-fpga"]
    with pytest.raises(RecipeError, match=r"unknown emulated accelerators \['x86-host'\]"):
        parse_recipe({"models": [{"name": "m", "arch": "mlp", "data": "digits", "quantize": {},
                                  "emulate": {"targets": ["x86-host"]}}]})


def test_a_non_emulated_target_is_refused_with_the_choices():
    with pytest.raises(UserError, match="x86-host is not an emulated accelerator") as caught:
        _mlp().costs("x86-host")
    assert "fantastic4-asic" in caught.value.fix


def test_a_new_cost_model_is_one_registration(monkeypatch):
    from edgewise.runtime import register_emulator
    from edgewise.targets import load_target

    profile = {**load_target("fantastic4-asic"), "emulator": "counting"}
    monkeypatch.setattr(emulators, "load_target", lambda name: profile)
    register_emulator("counting", lambda mlp, p, batch: {"total": {"layers": len(mlp.layers)}})
    try:
        assert _mlp().costs("anything")["total"] == {"layers": 1}
    finally:
        emulators.EMULATORS.unregister("counting")
