"""The `edgewise` command for tests: in this process (fast: torch is imported once), or as a real process."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest


@dataclass
class Completed:
    """What a command left: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_in_process(*args: str) -> Completed:
    """`edgewise ARGS` through the real entry point (error mapping and exit codes included), without a new process."""
    from edgewise.cli import main
    from edgewise.console import console

    out, err = io.StringIO(), io.StringIO()
    argv, width = sys.argv, console.width
    sys.argv = ["edgewise", *args]
    console.width = 200  # as COLUMNS=200 would make it: no wrapped lines to match against
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, console.width = argv, width
    return Completed(code, out.getvalue(), err.getvalue())


def run_process(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    """`python -m edgewise ARGS` as a separate process (for locks, signals and the real start-up)."""
    return subprocess.run([sys.executable, "-m", "edgewise", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200"}, timeout=600)


@pytest.fixture
def edgewise():
    return run_in_process


@pytest.fixture
def edgewise_process():
    return run_process
