"""Test set-up: a private model cache, quiet progress bars, a bare machine, and shared trained models."""

from __future__ import annotations

import os
import sys

import pytest


@pytest.fixture(scope="session", autouse=True)
def _bare_machine(tmp_path_factory: pytest.TempPathFactory):
    """Every test sees the same machine, whatever it runs on: empty sysfs and procfs roots (no RAPL, no board), no
    NVML and no TensorRT. Tests of a reader give it its own fake tree or module."""
    root = tmp_path_factory.mktemp("bare-machine")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGEWISE_SYSFS", str(root / "sys"))
        patch.setenv("EDGEWISE_PROCFS", str(root / "proc"))
        patch.setitem(sys.modules, "pynvml", None)
        patch.setitem(sys.modules, "tensorrt", None)
        yield root


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # a cache outside the user's, so every test session trains from scratch and proves it can
    os.environ["EDGEWISE_CACHE"] = str(tmp_path_factory.mktemp("edgewise-cache"))
    os.environ["EDGEWISE_QUIET"] = "1"


@pytest.fixture(scope="session")
def digits():
    from edgewise.zoo.digits import load_digits_dataset

    return load_digits_dataset()


@pytest.fixture(scope="session")
def rail():
    from edgewise.zoo.data import RailData, load_data

    return load_data(RailData())


def _reference(name: str):
    from edgewise.zoo.cache import trained_model
    from edgewise.zoo.data import load_data
    from edgewise.zoo.reference import REFERENCES

    ref = REFERENCES[name]
    data = load_data(ref.data)
    return trained_model(ref.arch, data, ref.train, 0, ref.arch_args), data


@pytest.fixture(scope="session")
def digits_mlp(_private_cache):
    return _reference("digits-mlp")


@pytest.fixture(scope="session")
def digits_cnn(_private_cache):
    return _reference("digits-cnn")


@pytest.fixture(scope="session")
def rail_net(_private_cache):
    return _reference("rail-net")


def unrecorded_files(root):
    """Files in a run directory that no stage recorded as an output (the manifest and the lock excepted)."""
    import json
    from pathlib import Path

    manifest = json.loads((Path(root) / "manifest.json").read_text())
    recorded = {o["path"] for s in manifest["stages"] for o in s.get("outputs", [])}
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*")
                  if p.is_file() and p.name not in ("manifest.json", ".edgewise.lock")
                  and str(p.relative_to(root)) not in recorded)


@pytest.fixture
def unrecorded():
    return unrecorded_files
