"""Every command that writes, failing at each of its writes: the file whose write failed and every file not yet
written are exactly as they were (sha256), nothing half-written or temporary is left, and the error is one line
with its fix. The disk refuses the rename that would put a finished file in place (ENOSPC), the last moment a
write can fail."""

import errno
import hashlib
import os

import pytest

# command -> (argv, the outputs it writes in order, under {out}); {in} holds the inputs
COMMANDS = {
    "prune": (["prune", "{in}/m.pt", "-o", "{out}/p.pt", "--data", "digits", "--criterion", "l1", "--rate", "0.3"],
              ["p.pt", "p.prune.json"]),
    "quantize": (["quantize", "{in}/m.pt", "-o", "{out}/q.pt", "--data", "digits", "--method", "uniform",
                  "--rounding", "nearest"], ["q.npz", "q.pt", "q.quantize.json"]),
    "encode": (["encode", "{in}/q.npz", "-o", "{out}/q.nnc"], ["q.nnc"]),
    "decode": (["decode", "{in}/q.nnc", "-o", "{out}/back.npz"], ["back.npz"]),
    "export": (["export", "{in}/q.pt", "--records", "{in}/q.npz", "-o", "{out}/m.onnx", "--data", "digits",
                "--plain-variant", "always"], ["m.onnx", "m.plain.onnx"]),
    "export-w4a8": (["export", "{in}/q.pt", "--records", "{in}/q.npz", "-o", "{out}/w.onnx", "--data", "digits",
                     "--w4a8", "--calibration-samples", "32"], ["w.onnx"]),
    "deploy-tar": (["deploy", "{in}/q.pt", "--records", "{in}/q.npz", "--bitstream", "{in}/q.nnc", "-o",
                    "{out}/bundle", "--tar", "--data", "digits"], ["bundle.tar.gz"]),
    "deploy": (["deploy", "{in}/q.pt", "--records", "{in}/q.npz", "-o", "{out}/bundle", "--data", "digits"],
               ["bundle"]),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, small_mlp):
    root = tmp_path_factory.mktemp("inputs")
    small_mlp(root)
    return root


def _digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}


@pytest.mark.parametrize("command, failing", [(c, i) for c, (_, outs) in COMMANDS.items() for i in range(len(outs))])
def test_a_write_that_fails_leaves_that_file_and_every_later_one_as_it_was(command, failing, inputs, tmp_path,
                                                                         monkeypatch, edgewise):
    argv, outputs = COMMANDS[command]
    out = tmp_path / "out"
    out.mkdir()
    for name in outputs:  # what an earlier run left there: a file, or a bundle's folder
        if name == "bundle":
            (out / name).mkdir()
            (out / name / "manifest.json").write_text("earlier\n")
        else:
            (out / name).write_bytes(f"earlier {name}\n".encode())
    before = _digests(out)
    real_replace, done = os.replace, []

    def refusing(src, dst, *args, **kwargs):
        # a rename in the output folder, but not a writer's step from one of its temporaries to another (.name.tmp)
        name = os.path.basename(dst)
        if os.path.dirname(os.path.abspath(dst)) == str(out) and not (name.startswith(".") and name.endswith(".tmp")):
            if len(done) == failing:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
            done.append(os.path.basename(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refusing)
    result = edgewise(*[a.replace("{in}", str(inputs)).replace("{out}", str(out)) for a in argv])
    assert result.returncode == 2, result.stderr[-1500:]
    assert "no space left" in result.stderr and "Traceback" not in result.stderr
    assert done == outputs[:failing]  # the files before the failing one were finished, in this order
    after = _digests(out)
    kept = [n for n in before if n.split("/")[0] in outputs[failing:]]
    assert {n: after.get(n) for n in kept} == {n: before[n] for n in kept}
    assert sorted(p.name for p in out.iterdir()) == sorted(outputs)  # no temporary file or staging folder left
