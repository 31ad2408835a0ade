import hashlib
import os

import pytest

from edgewise.base.atomic import atomic_path, sha256_file, write_json, write_text


def test_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_writes_and_hashes(tmp_path):
    path = write_json(tmp_path / "sub" / "x.json", {"a": 1})
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_disk_is_a_user_error(tmp_path, monkeypatch):
    import errno
    import os

    from edgewise.board.errors import UserError

    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    write_text(tmp_path / "b.txt", "old")
    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(UserError, match="no space left"):
        write_text(tmp_path / "b.txt", "new")
    assert (tmp_path / "b.txt").read_text() == "old"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_users_umask_not_the_temp_files_0600(tmp_path, umask, mode):
    import os
    import stat

    old = os.umask(umask)
    try:
        path = write_text(tmp_path / "report.md", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_killed_writers_temporaries_are_stale_and_a_live_ones_are_not(tmp_path):
    import subprocess
    import sys

    from edgewise.base.atomic import leftover_temporaries, stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = tmp_path / f".model.pt.{int(dead.stdout)}.abc123.tmp"
    alive = tmp_path / f".model.pt.{os.getpid()}.def456.tmp"
    for path in (killed, alive):
        path.write_bytes(b"half")
    assert leftover_temporaries(tmp_path) == sorted([killed, alive])
    assert stale_temporaries(tmp_path) == [killed]


def test_a_write_removes_what_a_killed_write_of_the_same_file_left(tmp_path):
    """A prune killed while writing left `.m.pt.<pid>.<rand>.tmp` beside its output and the rerun did not remove
    it; a live writer's temporary and another file's are left alone."""
    import subprocess
    import sys

    from edgewise.base.atomic import write_bytes

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = tmp_path / f".m.pt.{int(dead.stdout)}.abc123.tmp"
    alive = tmp_path / f".m.pt.{os.getpid()}.def456.tmp"
    other = tmp_path / f".n.pt.{int(dead.stdout)}.abc123.tmp"
    for path in (killed, alive, other):
        path.write_bytes(b"half")
    write_bytes(tmp_path / "m.pt", b"whole")
    assert (tmp_path / "m.pt").read_bytes() == b"whole"
    assert not killed.exists() and alive.exists() and other.exists()
