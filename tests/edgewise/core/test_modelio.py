"""Model files: what loads without consent (library classes, state_dicts), what needs it, and that nothing runs."""

import os

import pytest
import torch
from torch import nn

from edgewise.board.errors import UserError
from edgewise.core.modelio import load_model, load_weights, save_model
from edgewise.zoo.models import build_model


class Planted:
    """What a crafted model file holds: unpickling it calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class OwnNet(nn.Module):
    """A user's own architecture: its class is code of theirs, which unpickling imports and runs."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


@pytest.mark.parametrize("build", [
    lambda: build_model("lenet", (1, 8, 8), 10),
    lambda: build_model("torchvision:mobilenet_v3_small", (3, 32, 32), 4),
    lambda: __import__("torchvision").models.vit_b_16(),  # functools.partial norm layers
], ids=["zoo", "torchvision", "torchvision-partials"])
def test_library_architectures_load_without_consent(build, tmp_path):
    model = build().eval()
    torch.save(model, tmp_path / "plain.pt")
    save_model(model, tmp_path / "card.pt", {"stage": "float32"})
    for name in ("plain.pt", "card.pt"):
        loaded, _ = load_model(tmp_path / name)
        assert type(loaded) is type(model)
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(),
                                                     strict=True))


def test_a_crafted_file_is_refused_before_it_runs_anything(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"format": "edgewise-model/1", "card": {}, "module": Planted(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match=r"names code outside the classes Edgewise trusts \(posix.system\)") as caught:
        load_model(tmp_path / "evil.pt")
    assert "--trust-model-file" in caught.value.fix and "state_dict" in caught.value.fix
    assert not marker.exists()


def test_a_users_own_class_needs_consent_and_then_loads(tmp_path):
    torch.save(OwnNet(), tmp_path / "own.pt")
    with pytest.raises(UserError, match="OwnNet"):
        load_model(tmp_path / "own.pt")
    loaded, _ = load_model(tmp_path / "own.pt", trusted=True)
    assert isinstance(loaded, OwnNet)


def test_a_state_dict_loads_into_its_architecture_and_mismatches_are_named(tmp_path):
    model = build_model("mlp", (1, 8, 8), 10)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    fresh = load_weights(build_model("mlp", (1, 8, 8), 10), tmp_path / "w.pt")
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values(),
                                                 strict=True))
    with pytest.raises(UserError, match=r"do not fit the architecture: layers\.5\.weight is"):
        load_weights(build_model("mlp", (1, 8, 8), 7), tmp_path / "w.pt")
    torch.save(OwnNet(), tmp_path / "module.pt")
    with pytest.raises(UserError, match="cannot load weights file"):
        load_weights(build_model("mlp", (1, 8, 8), 10), tmp_path / "module.pt")


def test_recipes_and_the_cli_take_consent_and_state_dicts(tmp_path, edgewise):
    import yaml

    torch.save(OwnNet(), tmp_path / "own.pt")
    refused = edgewise("export", str(tmp_path / "own.pt"), "-o", str(tmp_path / "own.onnx"), "--data", "digits")
    assert refused.returncode == 2 and "--trust-model-file" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "own.onnx").exists()
    model = build_model("mlp", (1, 8, 8), 10)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    recipe = {"name": "weights", "report": False, "models": [
        {"name": "mine", "arch": "mlp", "weights": "w.pt", "data": "digits", "export": {}}]}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    ran = edgewise("run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "runs"))
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "runs" / "weights" / "mine" / "export" / "model-float32.onnx").is_file() or \
        (tmp_path / "runs" / "weights" / "mine" / "export" / "model.onnx").is_file()
    bad = {**recipe, "models": [{**recipe["models"][0], "trusted": True}]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    checked = edgewise("recipe", "check", str(tmp_path / "bad.yaml"))
    assert checked.returncode == 2 and "trusted and code apply to a model file" in checked.stderr


def test_the_same_model_writes_the_same_bytes_after_a_trip_through_a_file(tmp_path):
    from edgewise.core.modelio import load_model, save_model
    from edgewise.zoo.models import build_model

    torch.manual_seed(0)
    fresh = build_model("mlp", (1, 8, 8), 10, hidden=[16]).eval()  # load_model gives a model in eval mode
    card = {"data_spec": {"name": "digits"}, "task": "classification", "score_name": "accuracy",
            "metrics": {"score_name": "accuracy"}}
    save_model(fresh, tmp_path / "a.pt", card)
    again, read_card = load_model(tmp_path / "a.pt")
    save_model(again, tmp_path / "b.pt", read_card)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


SETTINGS_PACKAGE = '''
import typing


class Settings:
    """A training script's hyper-parameters, as a config library keeps them: values and the types they hold."""

    def __init__(self, widths):
        self.widths, self.kind, self.anything = widths, list, typing.Any
'''
PITCH_NET = '''
from torch import nn

import hparams_kit


class PitchNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.hparams = hparams_kit.Settings([8, 16])
        self.conv = nn.Conv1d(1, 8, 5)
'''


def test_a_model_holding_another_packages_objects_loads_with_both_named_and_its_files_remember_both(tmp_path,
                                                                                                     monkeypatch):
    import subprocess
    import sys
    import typing
    import zipfile

    from edgewise.core import usercode

    (tmp_path / "hparams_kit").mkdir()
    (tmp_path / "hparams_kit" / "__init__.py").write_text(SETTINGS_PACKAGE)
    (tmp_path / "pitchnet.py").write_text(PITCH_NET)
    subprocess.run([sys.executable, "-c", "import torch, pitchnet; torch.save(pitchnet.PitchNet(), 'net.pt')"],
                   cwd=tmp_path, check=True, env={"PYTHONPATH": str(tmp_path)})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(usercode, "_allowed", {})
    usercode.allow_codes("pitchnet")
    with pytest.raises(UserError, match=r"trusts \(hparams_kit.Settings\)") as caught:
        load_model(tmp_path / "net.pt")
    assert "--code pitchnet,hparams_kit," in caught.value.fix
    usercode.allow_codes("pitchnet, hparams_kit")
    model, _ = load_model(tmp_path / "net.pt")
    assert model.hparams.widths == [8, 16] and model.hparams.kind is list and model.hparams.anything is typing.Any
    save_model(model, tmp_path / "saved.pt", {"stage": "float32"})
    with zipfile.ZipFile(tmp_path / "saved.pt") as archive:
        stamped = next(n for n in archive.namelist() if n.endswith(usercode.CODE_ENTRY))
        assert archive.read(stamped).decode().splitlines() == ["pitchnet", "hparams_kit"]


def test_the_fix_never_offers_to_allow_the_standard_library(tmp_path, monkeypatch):
    from edgewise.core import usercode

    torch.save({"format": "edgewise-model/1", "card": {}, "module": Planted(tmp_path / "ran")}, tmp_path / "evil.pt")
    monkeypatch.setattr(usercode, "_allowed", {"my_model": usercode})
    with pytest.raises(UserError, match=r"\(posix.system\)") as caught:
        load_model(tmp_path / "evil.pt")
    assert caught.value.fix.startswith("name the code that defines its classes: --code my_model, which")
    assert not (tmp_path / "ran").exists()
