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
