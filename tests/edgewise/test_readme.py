"""The README's Python quickstart runs as written, through the public API, in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart() -> str:
    """The first Python block under the README's 'Quickstart: the Python API' heading."""
    match = re.search(r"## Quickstart: the Python API.*?```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "the README has no Python quickstart"
    return match.group(1)


def test_the_quickstart_uses_the_front_door_only():
    imports = re.findall(r"^(?:from|import) (\S+)", quickstart(), re.M)
    assert [i for i in imports if i.startswith("edgewise")] == ["edgewise"]


@pytest.mark.slow
def test_the_python_quickstart_runs(tmp_path):
    (tmp_path / "quickstart.py").write_text(quickstart(), encoding="utf-8")
    completed = subprocess.run([sys.executable, "quickstart.py"], cwd=tmp_path, capture_output=True, text=True,
                               env={**os.environ, "EDGEWISE_QUIET": "1"}, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "(emulated)" in completed.stdout and (tmp_path / "runs" / "quickstart" / "report.html").is_file()
    assert (tmp_path / "mlp.onnx").is_file()


def test_the_pruner_example_runs_on_the_quickstarts_model(tmp_path):
    """The stepped Pruner example, after the quickstart's lines up to its prune (the model, reference, accuracy)."""
    text = README.read_text(encoding="utf-8")
    example = re.search(r"gives the steps to a loop of your own.*?```python\n(.*?)```", text, re.S)
    assert example, "the README has no Pruner example"
    setup = quickstart().split("pruned = ew.prune(")[0].replace("fit(model, 150)", "fit(model, 20)")
    (tmp_path / "pruner.py").write_text(setup + example.group(1) + "print(pruned.unit, len(pruned.history))\n",
                                        encoding="utf-8")
    completed = subprocess.run([sys.executable, "pruner.py"], cwd=tmp_path, capture_output=True, text=True,
                               env={**os.environ, "EDGEWISE_QUIET": "1"}, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.splitlines()[-1] == "macs 4"  # the unpruned record and three steps of 0.1


def test_the_plug_in_example_runs(tmp_path):
    """The Plug-ins section's example registers a criterion and a schedule and prunes with them, by name."""
    match = re.search(r"## Plug-ins.*?```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "the README has no plug-in example"
    (tmp_path / "plugins.py").write_text(match.group(1), encoding="utf-8")
    completed = subprocess.run([sys.executable, "plugins.py"], cwd=tmp_path, capture_output=True, text=True,
                               env={**os.environ, "EDGEWISE_QUIET": "1"}, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == "bias twostep 2 steps"
