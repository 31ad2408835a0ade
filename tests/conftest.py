"""Test set-up: a private model cache per test session, quiet progress bars, and shared trained models."""

from __future__ import annotations

import os

import pytest


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
