import pytest
from pydantic import ValidationError

from edgewise.compress.repair import Repair
from edgewise.stages.prune_config import PruneConfig


@pytest.mark.parametrize(("name", "parts"), [("all", ("reconstruct", "batchnorm")), ("reconstruct", ("reconstruct",)),
                                             ("batchnorm", ("batchnorm",))])
def test_repair_names_the_parts_that_run(name, parts):
    settings = PruneConfig(repair=name).repair_settings()
    assert isinstance(settings, Repair) and settings.parts == parts


def test_repair_is_on_by_default_and_can_be_switched_off():
    assert PruneConfig().repair_settings().parts == ("reconstruct", "batchnorm")
    assert PruneConfig(repair="none").repair_settings() is None


def test_one_kind_of_fine_tuning_at_a_time():
    with pytest.raises(ValidationError, match=r"finetune .* or tune_steps"):
        PruneConfig(tune_steps=100, finetune={"epochs": 2})
    assert PruneConfig(tune_steps=100).tune_targets == "auto"


def test_a_named_composite_gives_its_rules_under_the_ones_given_per_kind():
    config = PruneConfig(composite="epsilon-gamma-flat", options={"rules": {"linear": "gamma"}})
    assert config.criterion_options() == {"rules": {"first": "flat", "conv": "gamma", "linear": "gamma"}}
    assert PruneConfig(composite="auto").criterion_options() == {}


@pytest.mark.parametrize(("settings", "problem"), [
    ({"criterion": "l1", "composite": "epsilon"}, "names LRP rules, but the criterion is l1"),
    ({"composite": "auto", "options": {"rules": {"conv": "zplus"}}}, "give it, or rules, not both"),
    ({"composite": "plus"}, "unknown LRP composite 'plus'")])
def test_a_composite_that_cannot_apply_is_refused(settings, problem):
    with pytest.raises(ValidationError, match=problem):
        PruneConfig(**settings)


def test_a_budget_unit_and_rounding_by_default():
    config = PruneConfig(unit="macs", rate=0.3)
    assert config.ranking().round_to == 8 and config.unit == "macs"


def test_a_latency_goal_in_milliseconds_needs_the_latency_unit():
    assert PruneConfig(unit="latency", latency_ms=2.5).latency_ms == 2.5
    with pytest.raises(ValidationError, match="latency_ms is a latency goal, but the unit is macs"):
        PruneConfig(unit="macs", latency_ms=2.5)
    with pytest.raises(ValidationError, match="latency_ms"):
        PruneConfig(unit="latency", latency_ms=0)


@pytest.mark.parametrize(("settings", "class_specific", "calibration", "chosen"), [
    ({}, False, 256, "auto"), ({}, True, 256, None), ({}, False, 3, None), ({"composite": "auto"}, False, 3, "auto"),
    ({"composite": "epsilon"}, False, 256, "epsilon"), ({"options": {"rules": {"conv": "gamma"}}}, False, 256, None),
    ({"criterion": "l1"}, False, 256, None)])
def test_an_lrp_cut_over_all_classes_chooses_its_rules_by_measurement_unless_told(settings, class_specific,
                                                                                   calibration, chosen):
    assert PruneConfig(**settings).chosen_composite(class_specific, calibration) == chosen
