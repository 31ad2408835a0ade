import os
import shutil
import stat
import sys
from pathlib import Path

import pytest


@pytest.fixture
def fake_trtexec(tmp_path, monkeypatch):
    """Put a `trtexec` that prints the real report format first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    target = bin_dir / "trtexec"
    source = Path(__file__).with_name("fake_trtexec.py").read_text()
    target.write_text(source.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
    target.chmod(target.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert shutil.which("trtexec") == str(target)
    return target
