"""Kill a small recipe run with SIGKILL at random moments, resume it each time, and compare the end with a run that
was never interrupted: scores, sizes and the sha256 of every recorded artifact, and no temporary file left behind.

Usage: .venv/bin/python tools/kill_resume.py [--kills 10] [--out /tmp/kill-resume]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

RECIPE = """name: small
models:
  - zoo: digits-mlp
    prune: {criterion: lrp, rate: 0.4, finetune: {epochs: 2, lr: 0.001}}
    quantize: {method: ecqx, bits: 4, lambda: 0.05, train: {epochs: 2}}
    encode: true
    export: {w4a8: {}}
    emulate: {targets: [fantastic4-asic]}
    deploy: {}
"""
# files whose bytes carry a time or depend on the machine's state rather than on the computation
VARYING = ("manifest.json", "report.html", "report.md", "bench.json", "bench.csv", "README.txt", "outcome.json")


def _run(recipe: Path, out: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgewise", "run", str(recipe), "--out", str(out), "--name", name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _artifacts(root: Path) -> dict[str, str]:
    """sha256 of every output the manifest records, except the ones that hold times."""
    manifest = json.loads((root / "manifest.json").read_text())
    return {o["path"]: o["sha256"] for stage in manifest["stages"] for o in stage.get("outputs", [])
            if Path(o["path"]).name not in VARYING and o["path"].split("/")[-2:-1] != ["bundle"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("/tmp/kill-resume"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from edgewise.base.atomic import leftover_temporaries

    args.out.mkdir(parents=True, exist_ok=True)
    recipe = args.out / "small.yaml"
    recipe.write_text(RECIPE)
    start = time.perf_counter()
    reference = _run(recipe, args.out, "reference")
    if reference.wait() != 0:
        print(reference.stderr.read(), file=sys.stderr)
        return 1
    whole = time.perf_counter() - start
    rng = random.Random(args.seed)
    moments = []
    for _ in range(args.kills):
        process = _run(recipe, args.out, "killed")
        moment = rng.uniform(0.5, whole)
        time.sleep(moment)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        moments.append(round(moment, 1))
    last = _run(recipe, args.out, "killed")
    if last.wait() != 0:
        print(last.stderr.read(), file=sys.stderr)
        return 1
    ref_root, killed_root = args.out / "reference", args.out / "killed"
    rows = [json.loads((root / "results.json").read_text()) for root in (ref_root, killed_root)]
    keys = ("version", "score", "onnx_score", "params", "macs", "size_bytes")
    same_rows = [{k: r.get(k) for k in keys} for r in rows[0]] == [{k: r.get(k) for k in keys} for r in rows[1]]
    artifacts = [_artifacts(root) for root in (ref_root, killed_root)]
    differing = sorted(k for k in artifacts[0] if artifacts[0][k] != artifacts[1].get(k))
    leftovers = leftover_temporaries(killed_root)
    print(json.dumps({"kills_at_s": moments, "uninterrupted_s": round(whole, 1), "rows_equal": same_rows,
                      "artifacts_compared": len(artifacts[0]), "artifacts_differing": differing,
                      "temporaries_left": [str(p) for p in leftovers]}, indent=2))
    return 0 if same_rows and not differing and not leftovers else 1


if __name__ == "__main__":
    sys.exit(main())
