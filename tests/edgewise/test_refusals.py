"""Refusals that need nothing heavy come before anything heavy is imported, and settings that would be silently
unused are refused: the classes of the held-out findings, not one case each."""

import json
import subprocess
import sys

import pytest

from tests.edgewise.test_hard_edges import assert_user_error

LIGHT_REFUSALS = [
    ["run", "nope.yaml"],
    ["recipe", "check", "nope.yaml"],
    ["prune", "missing.pt", "-o", "p.pt"],
    ["prune", "digits-mlp", "-o", "p.pt", "--data", "missing.npz"],
    ["prune", "vendor.onnx", "-o", "p.pt", "--data", "x.npz"],
    ["prune", "digits-mlp", "-o", "p.pt", "--code", "missing_train.py"],
    ["quantize", "missing.pth", "-o", "q.pt"],
    ["export", "digits-mlp", "-o", "m.onnx", "--records", "missing.npz"],
    ["deploy", "digits-mlp", "-o", "bundle", "--bitstream", "missing.nnc"],
    ["encode", "missing.npz", "-o", "m.nnc"],
    ["decode", "missing.nnc", "-o", "m.npz"],
    ["emulate", "missing.npz"],
    ["bench", "missing.onnx"],
    ["bench", "no-such-bundle"],
]
LIGHT_FLAGS = [
    ["prune", "digits-mlp", "-o", "p.pt", "--rate", "2"],
    ["prune", "digits-mlp", "-o", "p.pt", "--criterion", "nope"],
    ["prune", "digits-mlp", "-o", "p.pt", "--rule", "conv=a", "--rule", "conv=b"],
    ["quantize", "digits-mlp", "-o", "q.pt", "--method", "nope"],
    ["quantize", "digits-mlp", "-o", "q.pt", "--method", "ecq", "--lambda", "nan"],
    ["quantize", "digits-mlp", "-o", "q.pt", "--epochs", "-1"],
    ["quantize", "digits-mlp", "-o", "q.pt", "--epochs", "2", "--qat-targets", "nope"],
    ["export", "digits-mlp", "-o", "m.onnx", "--w4a8", "--calibrator", "nope"],
    ["export", "digits-mlp", "-o", "m.onnx", "--plain-variant", "nope"],
    ["run", "--jobs", "0"],
]


def test_missing_inputs_and_bad_flags_are_refused_before_torch_onnx_or_ray_is_imported(tmp_path):
    """`edgewise run nope.yaml` took 4.6 s of CPU to say the file is missing: every such refusal (a missing file, a
    value out of range, an unknown name) is made by the command line alone (one process runs them all and then
    lists the heavy modules it imported: none)."""
    script = (
        "import json, sys\nfrom edgewise.cli import main\ncodes = []\n"
        f"for argv in {LIGHT_REFUSALS + LIGHT_FLAGS!r}:\n"
        "    sys.argv = ['edgewise', *argv]\n"
        "    try:\n        main()\n    except SystemExit as exc:\n        codes.append(exc.code)\n"
        "print(json.dumps([codes, sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'ray') if m in sys.modules)]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    codes, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert codes == [2] * (len(LIGHT_REFUSALS) + len(LIGHT_FLAGS)), done.stderr
    assert heavy == []
    assert done.stderr.count("does not exist") == len(LIGHT_REFUSALS)
    assert "Traceback" not in done.stderr


def test_classes_for_a_criterion_that_reads_no_samples_are_refused(tmp_path, edgewise):
    """`prune --criterion l1 --class 3` exited 0 with a plain l1 cut: a setting the work ignores is an error."""
    for criterion in ("l1", "random"):
        assert_user_error(edgewise("prune", "digits-mlp", "-o", str(tmp_path / "p.pt"), "--criterion", criterion,
                                   "--class", "3"), f"criterion {criterion} reads no samples", "drop --class")
    assert not (tmp_path / "p.pt").exists()


@pytest.mark.parametrize("rules", [["conv=alpha2beta1", "conv=epsilon"], ["first=flat", "linear=epsilon",
                                                                           "first=wsquare"]])
def test_a_layer_kind_given_two_rules_is_refused(tmp_path, edgewise, rules):
    """`--rule conv=alpha2beta1 --rule conv=epsilon` kept the last one silently."""
    args = [a for r in rules for a in ("--rule", r)]
    kind = rules[-1].split("=")[0]
    assert_user_error(edgewise("prune", "digits-cnn", "-o", str(tmp_path / "p.pt"), *args),
                      f"the layer kind {kind} more than one rule")
