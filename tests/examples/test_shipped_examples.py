"""The examples ship inside the package: `edgewise examples DIR` writes every one of them, keeps the user's edits,
and the recipes it writes pass `recipe check` where they were written."""

from pathlib import Path

from edgewise.examples import write_examples

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_every_example_is_written_and_an_edited_one_is_kept(tmp_path, edgewise):
    shipped = sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*")
                     if p.is_file() and p.name != "__init__.py" and "__pycache__" not in p.parts)
    done = edgewise("examples", str(tmp_path / "ex"))
    assert done.returncode == 0 and f"{len(shipped)} example files written" in done.stderr
    written = sorted(str(p.relative_to(tmp_path / "ex")) for p in (tmp_path / "ex").rglob("*") if p.is_file())
    assert written == shipped
    (tmp_path / "ex" / "sweep.yaml").write_text("# mine\n")
    again, kept = write_examples(tmp_path / "ex")
    assert kept == [tmp_path / "ex" / "sweep.yaml"] and len(again) == len(shipped) - 1
    assert (tmp_path / "ex" / "sweep.yaml").read_text() == "# mine\n"
    check = edgewise("recipe", "check", str(tmp_path / "ex" / "expert-study.yaml"))
    assert check.returncode == 0, check.stderr
