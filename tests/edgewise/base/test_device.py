import copy
import functools

import pytest
import torch
import yaml
from torch import nn

from edgewise.base.device import device_of, on_device, resolve_device
from edgewise.board.errors import UserError


def _fake_gpus(monkeypatch, count):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_auto_is_the_cpu_without_a_gpu_and_the_current_gpu_with_one(monkeypatch):
    _fake_gpus(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu")
    _fake_gpus(monkeypatch, 2)
    # the index is explicit, so it compares equal with what a CUDA tensor reports
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_device_the_machine_lacks_is_a_user_error_saying_why(monkeypatch):
    _fake_gpus(monkeypatch, 0)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(UserError, match="device cuda was asked for, but this torch is built for the CPU only"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    with pytest.raises(UserError, match="torch finds no CUDA device"):
        resolve_device("cuda:0")
    _fake_gpus(monkeypatch, 1)
    with pytest.raises(UserError, match=r"device cuda:3 was asked for, but this machine has 1 CUDA device") as info:
        resolve_device("cuda:3")
    assert "cuda:0 to cuda:0" in info.value.fix
    with pytest.raises(UserError, match="unknown device 'gpu'"):
        resolve_device("gpu")


def test_on_device_copies_only_when_the_model_must_move():
    model = nn.Linear(3, 2)
    assert device_of(model) == torch.device("cpu") and device_of(nn.ReLU()) == torch.device("cpu")
    assert on_device(model, torch.device("cpu")) is model


def test_recipes_and_commands_refuse_unknown_and_missing_devices(tmp_path, edgewise):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"device": "gpu", "models": [{"zoo": "digits-mlp"}]}))
    result = edgewise("recipe", "check", str(recipe))
    assert result.returncode == 2 and "field 'device': unknown device 'gpu'" in result.stderr
    recipe.write_text(yaml.safe_dump({"device": "cuda", "models": [{"zoo": "digits-mlp"}]}))
    result = edgewise("run", str(recipe), "--out", str(tmp_path / "runs"))
    assert result.returncode == 2 and "device cuda was asked for, but" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()  # refused before the run directory was made
    recipe.write_text(yaml.safe_dump({"models": [{"zoo": "digits-mlp"}]}))
    result = edgewise("run", str(recipe), "--out", str(tmp_path / "runs"), "--device", "cuda:1")
    assert result.returncode == 2 and "device cuda:1 was asked for, but" in result.stderr
    result = edgewise("prune", "digits-mlp", "-o", str(tmp_path / "p.pt"), "--device", "tpu")
    assert result.returncode == 2 and "unknown device 'tpu'" in result.stderr
    assert not (tmp_path / "p.pt").exists()


# The CUDA path against the CPU path: these run where torch sees a GPU (skipped elsewhere).

def test_lrp_scores_and_the_pruned_network_agree_with_the_cpu(cuda_device, request):
    from edgewise import compress
    from edgewise.compress.layers import weight_layers

    trained, data = request.getfixturevalue("digits_cnn")  # after the skip: no training on machines without a GPU
    ref = compress.ReferenceSamples.from_split(data.val.x, data.val.y, data.task, 10)
    names = set(weight_layers(trained.module))
    on_cpu = compress.get_criterion("lrp").scores(trained.module, names, ref)
    on_gpu = compress.get_criterion("lrp").scores(on_device(trained.module, cuda_device), names, ref)
    for name in on_cpu:
        assert on_gpu[name].device == cuda_device
        torch.testing.assert_close(on_gpu[name].cpu(), on_cpu[name], rtol=1e-3, atol=1e-6)
    cpu_result = compress.prune(trained.module, ref, "lrp", 0.3)
    gpu_result = compress.prune(on_device(trained.module, cuda_device), ref, "lrp", 0.3)
    assert gpu_result.plan == cpu_result.plan and device_of(gpu_result.model) == cuda_device
    x = data.test.x[:64]
    torch.testing.assert_close(gpu_result.model(x.to(cuda_device)).cpu(), cpu_result.model(x), rtol=1e-4, atol=1e-4)


def test_training_and_qat_on_the_gpu_score_as_on_the_cpu(cuda_device, request):
    from edgewise import compress
    from edgewise.compress.quant.qat import train_quantized
    from edgewise.zoo.models import build_model
    from edgewise.zoo.training import TrainConfig, evaluate, fit

    digits = request.getfixturevalue("digits")
    torch.manual_seed(0)
    model = build_model("mlp", digits.input_shape, digits.num_classes)
    scores = {}
    for device in (torch.device("cpu"), cuda_device):
        trained = copy.deepcopy(model).to(device)
        fit(trained, digits, TrainConfig(epochs=4, patience=4), seed=0)
        qat = compress.quantize(trained, "ecqx", 4, ref=compress.ReferenceSamples.from_split(
            digits.val.x, digits.val.y, digits.task, 10, output="logit"),
            train=functools.partial(train_quantized, x=digits.train.x, y=digits.train.y, epochs=1,
                                    score=lambda q: evaluate(q, digits.val, digits.task)["score"]))
        assert device_of(qat.model) == device
        scores[device.type] = (evaluate(trained, digits.test, digits.task)["score"],
                               evaluate(qat.model, digits.test, digits.task)["score"], qat.summary()["sparsity"])
    for cpu, gpu in zip(scores["cpu"], scores["cuda"], strict=True):
        assert abs(cpu - gpu) <= 0.02


@pytest.mark.slow
def test_a_recipe_runs_on_the_gpu_and_writes_files_that_load_on_the_cpu(tmp_path, cuda_device):
    from edgewise import api
    from edgewise.core.modelio import load_model

    recipe = {"name": "gpu", "models": [{"zoo": "digits-mlp", "prune": {"criterion": "lrp", "rate": 0.3},
                                         "quantize": {"method": "ecqx", "train": {"epochs": 1}}}]}
    rows = {}
    for device in ("cpu", "cuda"):
        result = api.run({**recipe, "device": device}, out=tmp_path / device)
        rows[device] = {r["stage"].split(" ")[0]: r["score"] for r in result.rows}
        for model_file in (tmp_path / device).rglob("model.pt"):
            module, _ = load_model(model_file)
            assert device_of(module) == torch.device("cpu")
    assert rows["cpu"].keys() == rows["cuda"].keys()
    for stage, score in rows["cpu"].items():
        assert abs(rows["cuda"][stage] - score) <= 0.02, stage
