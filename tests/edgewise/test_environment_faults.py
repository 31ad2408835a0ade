"""The environment a command meets and the faults of the moment a stage writes: a cache, an output or a temporary
folder that is a file, read-only, full, a dangling link or a loop; no HOME, a name that is not UTF-8, the C locale,
a closed stdin; a disk that fills, a file system that turns read-only and a kill in the middle of each stage. Each is
one line with the fix (before the work where it can be), and no fault ever damages or removes an earlier artifact."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_hard_edges import assert_user_error

from edgewise.board.errors import UserError

STAGED = {"name": "faults", "report": False, "models": [{
    "zoo": "digits-mlp", "prune": {"criterion": "l1", "rate": 0.3}, "quantize": {"method": "uniform", "bits": 4},
    "encode": True, "export": {}, "deploy": {}}]}
# the stages of STAGED, in their order; a fault in one must leave every other one's files as they were
STAGES = ("train", "prune", "quantize", "encode", "export", "deploy")


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".edgewise.lock"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, digits_mlp):
    """A finished run of every stage, copied afresh for each test that injects a fault into it."""
    from edgewise.pipeline import run_recipe
    from edgewise.recipe import parse_recipe

    out = tmp_path_factory.mktemp("finished")
    result = run_recipe(parse_recipe(STAGED), out=out)
    return result.root


def _copy(finished: Path, tmp_path: Path) -> Path:
    root = tmp_path / "runs" / finished.name
    shutil.copytree(finished, root)
    return root


def _stage_files(hashes: dict[str, str], stage: str) -> dict[str, str]:
    return {k: v for k, v in hashes.items() if f"/{stage}/" in f"/{k}"}


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("fault", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
def test_a_write_that_fails_mid_stage_leaves_every_artifact_whole(stage, fault, finished, tmp_path, monkeypatch):
    import edgewise.base.atomic
    from edgewise.pipeline import run_recipe
    from edgewise.recipe import parse_recipe

    root = _copy(finished, tmp_path)
    before = _hashes(root)
    real_replace = os.replace

    def failing(src, dst):
        if f"/{stage}/" in str(dst):
            raise OSError(fault, os.strerror(fault), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(edgewise.base.atomic.os, "replace", failing)
    with pytest.raises(UserError, match="no space left" if fault == errno.ENOSPC else "read-only"):
        run_recipe(parse_recipe(STAGED), out=root.parent, force=(stage,))
    after = _hashes(root)
    # every file is still there and whole: the stage's own files are the earlier ones (atomic writes), the others
    # untouched; only the manifest has changed (the stage is recorded as failed)
    assert {k: v for k, v in after.items() if k != "manifest.json"} == \
        {k: v for k, v in before.items() if k != "manifest.json"}
    assert not list(root.rglob("*.tmp"))
    manifest = json.loads((root / "manifest.json").read_text())
    failed = [s for s in manifest["stages"] if s["status"] == "failed"]
    assert [s["stage"] for s in failed] == [stage]
    monkeypatch.setattr(edgewise.base.atomic.os, "replace", real_replace)
    # the next run redoes the failed stage alone: the later ones, recorded before the fault, are reused
    run_recipe(parse_recipe(STAGED), out=root.parent)
    manifest = json.loads((root / "manifest.json").read_text())
    assert sorted(s["stage"] for s in manifest["stages"] if not s.get("reused")) == sorted({stage, "report"})
    stamped = {"manifest.json", "digits-mlp/deploy/bundle/manifest.json"}  # a bundle's manifest dates its making
    assert {k: v for k, v in _hashes(root).items() if k not in stamped} == \
        {k: v for k, v in before.items() if k not in stamped}


KILLER = textwrap.dedent("""
    import os, signal, sys, json
    import edgewise.base.atomic
    from edgewise.pipeline import run_recipe
    from edgewise.recipe import parse_recipe

    stage, out, recipe = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    real_replace = os.replace

    def killed(src, dst):  # the moment the stage's first file is complete but not yet in place
        if f"/{stage}/" in str(dst):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)

    edgewise.base.atomic.os.replace = killed
    run_recipe(parse_recipe(recipe), out=out, force=(stage,))
""")


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["train", "quantize", "deploy"])
def test_a_run_killed_mid_stage_loses_nothing_and_resumes(stage, finished, tmp_path):
    from edgewise.pipeline import run_recipe
    from edgewise.recipe import parse_recipe

    root = _copy(finished, tmp_path)
    before = _hashes(root)
    killed = subprocess.run([sys.executable, "-c", KILLER, stage, str(root.parent), json.dumps(STAGED)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = _hashes(root)
    assert {k: v for k, v in left.items() if k in before and k != "manifest.json"} == \
        {k: v for k, v in before.items() if k != "manifest.json"}
    # what is new is the killed write's temporary (a file, or the bundle's staging folder)
    assert all(any(part.endswith(".tmp") for part in Path(k).parts) for k in set(left) - set(before))
    run_recipe(parse_recipe(STAGED), out=root.parent)
    assert not list(root.rglob("*.tmp"))  # the next run, under the lock, removed what the killed one left
    assert _stage_files(_hashes(root), stage) == _stage_files(before, stage)


def test_a_cache_that_is_a_file_is_refused_before_training(tmp_path, monkeypatch, edgewise):
    (tmp_path / "cache").write_text("not a folder")
    monkeypatch.setenv("EDGEWISE_CACHE", str(tmp_path / "cache"))
    result = edgewise("prune", "digits-cnn", "-o", str(tmp_path / "p.pt"))
    assert_user_error(result, "the model cache (EDGEWISE_CACHE)", "a part of the path is a file")
    assert not (tmp_path / "p.pt").exists()


def test_a_read_only_cache_is_refused_before_training(tmp_path, monkeypatch, edgewise):
    from edgewise.base import paths

    real_mkstemp = paths.tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if str(dir).startswith(str(tmp_path / "cache")):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setenv("EDGEWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(paths.tempfile, "mkstemp", read_only)
    assert_user_error(edgewise("quantize", "digits-cnn", "-o", str(tmp_path / "q.pt"), "--method", "uniform"),
                      "the model cache (EDGEWISE_CACHE)", "read-only", "EDGEWISE_CACHE")


@pytest.mark.parametrize("place", ["file", "dangling-link", "link-loop", "under-a-file", "long-name"])
def test_an_output_place_that_cannot_be_written_is_one_line(place, tmp_path, digits_mlp, edgewise):
    from edgewise.core.modelio import save_model

    trained, _ = digits_mlp
    save_model(trained.module, tmp_path / "m.pt", {"data_spec": {"name": "digits"}})
    (tmp_path / "a-file").write_text("x")
    os.symlink(tmp_path / "nowhere" / "runs", tmp_path / "dangling-link")
    os.symlink("loop-b", tmp_path / "link-loop")
    os.symlink("link-loop", tmp_path / "loop-b")
    out = {"file": "a-file", "dangling-link": "dangling-link", "link-loop": "link-loop",
           "under-a-file": "a-file/runs", "long-name": "x" * 300}[place]
    before = _hashes(tmp_path)
    assert_user_error(edgewise("run", "--out", str(tmp_path / out)))
    model_out = out if place != "dangling-link" else "dangling-link/p.pt"
    assert_user_error(edgewise("prune", str(tmp_path / "m.pt"), "-o", str(tmp_path / model_out) + "/p.pt",
                               "--criterion", "l1"))
    assert _hashes(tmp_path) == before


def test_a_name_that_is_not_utf8_in_the_c_locale_with_stdin_closed(tmp_path, digits_mlp):
    from edgewise.core.modelio import save_model

    trained, _ = digits_mlp
    name = os.fsdecode(b"model-\xff")
    save_model(trained.module, tmp_path / f"{name}.pt", {"data_spec": {"name": "digits"}})
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "LANG", "LC_ALL", "PYTHONIOENCODING")}
    env.update(LC_ALL="C", LANG="C", TMPDIR=str(tmp_path / f"{name}.pt"), COLUMNS="200")  # TMPDIR: a file
    result = subprocess.run([sys.executable, "-m", "edgewise", "prune", os.fsencode(tmp_path / f"{name}.pt"), "-o",
                             os.fsencode(tmp_path / f"{name}-pruned.pt"), "--criterion", "l1", "--rate", "0.2"],
                            capture_output=True, env=env, timeout=300, preexec_fn=lambda: os.close(0))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert (tmp_path / f"{name}-pruned.pt").is_file()
    assert b"written to" in result.stderr


def _file_size_limit(limit: int):
    """For a child process: writes past `limit` bytes fail with EFBIG instead of killing it (SIGXFSZ ignored), the
    way a full disk fails a write halfway."""
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("command", ["decode", "encode", "quantize"])
def test_a_write_cut_short_is_one_line_and_leaves_nothing(tmp_path, command, small_mlp):
    """`decode` onto a full disk printed the clear error and then numpy's zip file's "Exception ignored" traceback."""
    small_mlp(tmp_path, hidden=64)
    argv = {"decode": ["decode", "q.nnc", "-o", "out/back.npz"], "encode": ["encode", "q.npz", "-o", "out/q.nnc"],
            "quantize": ["quantize", "m.pt", "-o", "out/q.pt", "--method", "uniform", "--rounding", "nearest"]}
    (tmp_path / "out").mkdir()
    done = subprocess.run([sys.executable, "-m", "edgewise", *argv[command]], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, preexec_fn=_file_size_limit(1024),
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 2, done.stderr
    assert "larger than this process or file system allows" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert list((tmp_path / "out").iterdir()) == []
