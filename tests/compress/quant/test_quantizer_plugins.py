"""Quantizers are plug-ins: the registry names them, recipes validate against it, and a new one is one entry."""

import pytest
import torch

from edgewise import compress
from edgewise.board.errors import RecipeError, UserError
from edgewise.compress.quant import QUANTIZERS
from edgewise.compress.quant.model import QuantizedModel, layer_record, write_back
from edgewise.compress.quant.uniform import UniformQuantizer
from edgewise.recipe import parse_recipe
from edgewise.zoo.models import build_model


class HalfStepQuantizer(UniformQuantizer):
    """A test quantizer: the uniform grid with every level halved toward zero."""

    name = "half"

    def quantize(self, model, layers, bits, ref, train):
        out = super().quantize(model, layers, bits, ref, train)
        for name, module in layers.items():
            r = out.records[name]
            out.records[name] = layer_record(name, module, (r.levels // 2).astype("int8"), r.step, bits, r.qmin,
                                             r.qmax, self.name)
            write_back(module, out.records[name])
        return QuantizedModel(model, out.records, self.name, bits)


@pytest.fixture
def half():
    compress.register_quantizer("half", HalfStepQuantizer)
    yield
    QUANTIZERS.unregister("half")


def test_a_registered_quantizer_is_used_by_the_api_and_accepted_by_recipes(half):
    model = build_model("mlp", (1, 8, 8), 10, hidden=[16]).eval()
    q = compress.quantize(model, "half", 4)
    assert q.method == "half" and all(r.method == "half" for r in q.records.values())
    recipe = parse_recipe({"models": [{"name": "m", "arch": "mlp", "data": "digits", "quantize": {"method": "half"}}]})
    assert recipe.models[0].quantize.method == "half"


def test_unknown_methods_and_settings_a_method_does_not_take():
    with pytest.raises(RecipeError, match="unknown quantization method 'ternary'; expected one of uniform, ecq, ecqx"):
        parse_recipe({"models": [{"name": "m", "arch": "mlp", "data": "digits", "quantize": {"method": "ternary"}}]})
    with pytest.raises(UserError, match="unknown quantization method"):
        compress.quantize(torch.nn.Linear(4, 2), "ternary")
    # a setting the method does not take is refused, naming it and the ones it takes: ignored, it would quantize
    # otherwise than asked
    with pytest.raises(UserError, match="quantizer 'uniform' takes no setting block_size") as caught:
        compress.quantize(torch.nn.Linear(64, 2), "uniform", 4, block_size=32)
    assert "per_channel, block" in caught.value.fix
    with pytest.raises(UserError, match="takes no setting rho"):
        compress.get_quantizer("ecq", lam=0.3, rho=1.0)
    assert vars(compress.get_quantizer("ecqx", lam=0.3)) == {"lam": 0.3, "block": None, "rho": 2.0, "p": 0.1,
                                                                 "rounding": "auto", "per_channel": False}
    model = {"name": "m", "arch": "mlp", "data": "digits"}
    with pytest.raises(RecipeError, match="uniform takes no lambda, rho; its settings are per_channel, block"):
        parse_recipe({"models": [{**model, "quantize": {"method": "uniform", "lambda": 0.1, "rho": 1.0}}]})
    config = parse_recipe({"models": [{**model, "quantize": {"method": "uniform", "per_channel": True}}]})
    assert config.models[0].quantize.quantizer_settings() == {"per_channel": True, "block": None,
                                                               "rounding": "auto"}


def test_the_built_in_settings_table_is_each_constructor_s_keywords():
    """Recipes are checked against BUILTIN_SETTINGS without importing torch: it must say what the classes take."""
    import inspect

    from edgewise.compress.quant import BUILTIN_SETTINGS

    for name in BUILTIN_SETTINGS:
        assert QUANTIZERS.is_builtin(name)
        signature = inspect.signature(QUANTIZERS.get(name).__init__)
        assert set(BUILTIN_SETTINGS[name]) == {p for p in signature.parameters if p != "self"}, name


def test_a_quantizer_without_training_refuses_to_train():
    import torch

    from edgewise.board.errors import UserError
    from edgewise.compress.quant import get_quantizer

    uniform = get_quantizer("uniform")
    assert not uniform.trainable
    with pytest.raises(UserError, match="uniform has no quantization-aware training"):
        uniform.trained(torch.nn.Linear(2, 2), {}, 4, None, None, {}, lambda *a, **k: None)
