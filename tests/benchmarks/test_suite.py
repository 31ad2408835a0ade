"""The kit's own benchmark suite: every topic is a module with run(), and the suite lists only those."""

import importlib

from benchmarks.suite import topics


def test_every_topic_has_a_run_function():
    names = topics()
    assert "trained" in names and "textlines" not in names
    for name in names:
        assert callable(importlib.import_module(f"benchmarks.topics.{name}").run), name
