import json

import pytest

from edgewise.base.atomic import sha256_file, write_text
from edgewise.core.rundir import RunDirectory


def test_manifest_records_stages_with_hashes(tmp_path):
    run = RunDirectory.create(tmp_path / "r", "r", {"name": "r"})
    src = write_text(tmp_path / "input.txt", "in")
    with run.stage("train", "m", params={"epochs": 3}) as st:
        st.add_input(src)
        out = write_text(st.path("model.bin"), "weights")
        st.add_output(out)
        st.metrics["score"] = 0.9
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    stage = manifest["stages"][0]
    assert stage["id"] == "m/train" and stage["status"] == "ok" and stage["params"] == {"epochs": 3}
    assert stage["outputs"][0]["path"] == "m/train/model.bin"
    assert stage["outputs"][0]["sha256"] == sha256_file(out) and stage["outputs"][0]["bytes"] == 7
    assert stage["inputs"][0]["sha256"] == sha256_file(src)
    assert stage["wall_s"] >= 0 and "torch" in manifest["environment"]["versions"]


def test_failed_stage_is_recorded_and_earlier_artifacts_stay(tmp_path):
    run = RunDirectory.create(tmp_path, "r", {})
    with run.stage("train", "m") as st:
        first = write_text(st.path("model.bin"), "good")
        st.add_output(first)
    with pytest.raises(ValueError), run.stage("quantize", "m"):
        raise ValueError("boom")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["ok", "failed"]
    assert "boom" in manifest["stages"][1]["error"]
    assert first.read_text() == "good"


def test_rerunning_a_stage_replaces_its_record(tmp_path):
    run = RunDirectory.create(tmp_path, "r", {})
    for score in (1, 2):
        with run.stage("evaluate", "m") as st:
            st.metrics["score"] = score
    assert [s["metrics"]["score"] for s in run.manifest["stages"]] == [2]


def test_a_killed_runs_temporary_files_are_removed_when_the_next_run_takes_the_lock(tmp_path):
    root = tmp_path / "r"
    (root / "m" / "train").mkdir(parents=True)
    leftovers = [root / ".manifest.json.k3j9x2.tmp", root / "m" / "train" / ".model.pt.a8f7qq.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    kept = [root / "m" / "train" / "model.pt", root / "notes.tmp", root / ".hidden"]
    for path in kept:
        path.write_bytes(b"mine")
    with RunDirectory.create(root, "r", {}):
        assert not any(p.exists() for p in leftovers)
        assert all(p.read_bytes() == b"mine" for p in kept)
