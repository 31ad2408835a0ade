import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgewise.base.atomic import sha256_file


def test_version(edgewise_process):
    result = edgewise_process("--version")
    assert result.returncode == 0 and result.stdout.startswith("edgewise ")


def test_zoo_list_names_architectures_data_and_references(edgewise):
    result = edgewise("zoo", "list")
    assert result.returncode == 0
    for word in ("railnet", "mobilenetv2", "torchvision:<name>", "digits", "rail", "folder", "npz", "rail-net"):
        assert word in result.stderr


def test_bad_recipe_exits_2_with_the_field_in_one_line(tmp_path, edgewise):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(yaml.safe_dump({"models": [{"name": "a", "arch": "mlp", "data": "digits",
                                                  "train": {"lr": "fast"}}]}))
    result = edgewise("run", str(recipe), "--out", str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "models.0.train.lr" in lines[0] and "fast" in lines[0]
    assert "Traceback" not in result.stderr


def test_recipe_show_round_trips_through_check(tmp_path, edgewise):
    shown = edgewise("recipe", "show")
    path = tmp_path / "r.yaml"
    path.write_text(shown.stdout)
    assert edgewise("recipe", "check", str(path)).returncode == 0


@pytest.mark.slow
def test_prune_command_writes_a_smaller_model(tmp_path, digits_cnn, edgewise):
    out = tmp_path / "p.pt"
    result = edgewise("prune", "digits-cnn", "-o", str(out), "--criterion", "l1", "--rate", "0.3",
                      "--max-layer-rate", "0.5", "--round-to", "4")
    assert result.returncode == 0, result.stderr
    assert "narrowest layer:" in result.stderr  # the console writes to stderr
    from edgewise.core.modelio import load_model

    module, card = load_model(out)
    assert sum(p.numel() for p in module.parameters()) < sum(p.numel() for p in digits_cnn[0].module.parameters())
    assert card["stage"].startswith("pruned l1")
    summary = json.loads(out.with_suffix(".prune.json").read_text())
    assert summary["criterion"] == "l1" and summary["narrowest_layer"]["rate"] <= 0.5
    assert all(r["channels_after"] % 4 == 0 for r in summary["layers"] if r["channels_after"] < r["channels_before"])


def _cost(stderr: str) -> float:
    """The score after, from a command's closing cost line."""
    return float(re.search(r"cost: score [0-9.]+ -> ([0-9.]+)", stderr).group(1))


def test_prune_command_repairs_the_cut_and_tunes_it_when_asked(tmp_path, digits_cnn, edgewise):
    common = ("prune", "digits-cnn", "--criterion", "l1", "--rate", "0.5")
    bare = edgewise(*common, "-o", str(tmp_path / "bare.pt"), "--repair", "none")
    repaired = edgewise(*common, "-o", str(tmp_path / "repaired.pt"), "--tune-steps", "20", "--tune-targets",
                        "distill")
    assert bare.returncode == 0 and repaired.returncode == 0, bare.stderr + repaired.stderr
    assert "Repair after" not in bare.stderr
    assert "Repair after step 1: held-out output error against the unpruned network" in repaired.stderr
    assert "Tuning after step 1: 20 steps (distill)" in repaired.stderr
    assert _cost(repaired.stderr) > _cost(bare.stderr)
    summary = json.loads((tmp_path / "repaired.prune.json").read_text())
    assert summary["repair"][0]["error_after"] < summary["repair"][0]["error_before"]
    assert summary["history"][-1]["tuning"]["steps"] == 20
    bad = edgewise(*common, "-o", str(tmp_path / "x.pt"), "--repair", "sometimes")
    assert bad.returncode == 2 and "--repair" in bad.stderr and "Traceback" not in bad.stderr


def test_prune_command_refuses_bad_rates_and_criteria(tmp_path, edgewise):
    bad_rate = edgewise("prune", "digits-mlp", "-o", str(tmp_path / "p.pt"), "--rate", "1.5")
    assert bad_rate.returncode == 2 and "--rate" in bad_rate.stderr
    bad_criterion = edgewise("prune", "digits-mlp", "-o", str(tmp_path / "p.pt"), "--criterion", "vibes")
    assert bad_criterion.returncode == 2 and "unknown pruning criterion 'vibes'" in bad_criterion.stderr
    bad_floor = edgewise("prune", "digits-mlp", "-o", str(tmp_path / "p.pt"), "--max-layer-rate", "0")
    assert bad_floor.returncode == 2 and "--max-layer-rate" in bad_floor.stderr
    bad_round = edgewise("prune", "digits-mlp", "-o", str(tmp_path / "p.pt"), "--round-to", "0")
    assert bad_round.returncode == 2 and "--round-to" in bad_round.stderr
    both = edgewise("prune", "digits-mlp", "-o", str(tmp_path / "p.pt"), "--rate", "0.3", "--target", "macs=0.7")
    assert both.returncode == 2 and "--rate and --target both say how much to cut" in both.stderr
    bad_target = edgewise("prune", "digits-mlp", "-o", str(tmp_path / "p.pt"), "--target", "flops=0.7")
    assert bad_target.returncode == 2 and "target 'flops=0.7' is not UNIT=SHARE" in bad_target.stderr
    assert "Traceback" not in (bad_rate.stderr + bad_criterion.stderr + bad_floor.stderr + bad_round.stderr
                               + both.stderr + bad_target.stderr)


def test_prune_command_meets_a_mac_target(tmp_path, digits_cnn, edgewise):
    out = tmp_path / "p.pt"
    result = edgewise("prune", "digits-cnn", "-o", str(out), "--criterion", "l1", "--target", "macs=0.6",
                      "--repair", "none", "--latency")
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.with_suffix(".prune.json").read_text())
    assert summary["unit"] == "macs" and summary["rate_requested"] == pytest.approx(0.4)
    assert 0.4 <= summary["removed"]["macs"] <= 0.42 and summary["shortfall"] is None
    assert f"(-{summary['removed']['macs']:.1%}); written to" in " ".join(result.stderr.split())
    assert "latency (measured: ONNX Runtime on this CPU, batch 1, median of" in " ".join(result.stderr.split())
    assert {summary["latency"][k]["kind"] for k in ("before", "after")} == {"measured"}
    from edgewise.core.modelio import load_model

    assert load_model(out)[1]["stage"] == f"pruned l1: MACs -{summary['removed']['macs']:.0%}, " \
        f"params -{summary['removed']['params']:.0%}"


def test_prune_command_meets_a_latency_target_by_timed_trial_cuts(tmp_path, digits_cnn, edgewise):
    out = tmp_path / "p.pt"
    result = edgewise("prune", "digits-cnn", "-o", str(out), "--criterion", "l1", "--target", "latency=0.9",
                      "--repair", "none")
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.with_suffix(".prune.json").read_text())
    record = summary["latency_budget"]
    assert summary["unit"] == "latency"
    assert summary["removed"]["latency"] == 1 - record["after_ms"] / record["before_ms"]
    assert record["how"].startswith("measured: ONNX Runtime on this CPU, batch 1, median of at least")
    assert [s["step"] for s in record["steps"]] == [1] and record["steps"][0]["probes"][0]["macs_removed"] == 0.95
    printed = " ".join(result.stderr.split())
    assert f"latency ({record['how']}): {record['before_ms']:.3g} ms -> {record['after_ms']:.3g} ms" in printed
    unreachable = edgewise("prune", "digits-cnn", "-o", str(tmp_path / "q.pt"), "--target", "latency=10000ms")
    assert unreachable.returncode == 2 and "within the goal of 10000 ms" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr and not (tmp_path / "q.pt").exists()


@pytest.mark.slow
def test_run_writes_manifest_results_and_report(tmp_path, digits_mlp, digits_cnn, edgewise):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "small", "models": [
        {"zoo": "digits-mlp"},
        {"zoo": "digits-cnn", "prune": {"criterion": "lrp", "rate": 0.3},
         "experts": [{"name": "odd", "classes": ["1", "3"], "criterion": "lrp", "rate": 0.3},
                     {"name": "even", "classes": ["2", "4"], "criterion": "lrp", "rate": 0.3}],
         "expert_unions": [["odd", "even"]]},
    ]}))
    result = edgewise("run", str(recipe), "--out", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    root = tmp_path / "runs" / "small"
    manifest = json.loads((root / "manifest.json").read_text())
    assert [s["id"] for s in manifest["stages"]] == [
        "digits-mlp/train", "digits-mlp/evaluate", "digits-cnn/train", "digits-cnn/evaluate", "digits-cnn/prune",
        "digits-cnn/expert-odd", "digits-cnn/expert-even", "digits-cnn/union-odd+even", "digits-cnn/expert-table",
        "report"]
    for stage in manifest["stages"]:
        for record in stage["outputs"]:
            path = root / record["path"]
            assert sha256_file(path) == record["sha256"] and path.stat().st_size == record["bytes"]
    assert all(s["metrics"]["from_cache"] for s in manifest["stages"] if s["stage"] == "train")
    rows = json.loads((root / "results.json").read_text())
    assert [r["stage"] for r in rows][:2] == ["float32", "float32"]
    assert rows[2]["stage"].startswith("pruned lrp: MACs -")
    pruned = rows[2]
    assert pruned["params"] < rows[1]["params"] and pruned["macs"] < rows[1]["macs"]
    assert rows[3]["score_name"] == "accuracy[1,3]" and rows[5]["stage"] == "union odd+even"
    assert rows[3]["params"] <= rows[5]["params"] <= rows[1]["params"]
    from edgewise.core.modelio import load_model

    reloaded, _card = load_model(root / "digits-cnn" / "prune" / "model.pt")
    assert sum(p.numel() for p in reloaded.parameters()) == pruned["params"]
    report = (root / "report.md").read_text()
    assert "## Pruning of digits-cnn" in report and "## Experts of digits-cnn: path similarity per layer" in report
    assert (root / "results.csv").read_text().splitlines()[0].startswith("model,stage,task")
    assert "report" in result.stderr and (root / "report.html").is_file() and (root / "report.md").is_file()


@pytest.mark.slow
def test_quantize_encode_decode_commands(tmp_path, digits_mlp, edgewise):
    out = tmp_path / "q.pt"
    result = edgewise("quantize", "digits-mlp", "-o", str(out), "--method", "ecq", "--lambda", "0.2")
    assert result.returncode == 0, result.stderr
    assert out.is_file() and out.with_suffix(".npz").is_file()
    assert edgewise("encode", str(out.with_suffix(".npz")), "-o", str(tmp_path / "q.nnc")).returncode == 0
    assert edgewise("decode", str(tmp_path / "q.nnc"), "-o", str(tmp_path / "back.npz")).returncode == 0
    from edgewise.base.records import load_records

    original, _ = load_records(out.with_suffix(".npz"))
    back, _ = load_records(tmp_path / "back.npz")
    assert all((original[k].levels == back[k].levels).all() for k in original)
    damaged = bytearray((tmp_path / "q.nnc").read_bytes())
    damaged[len(damaged) // 2] ^= 0x10
    (tmp_path / "bad.nnc").write_bytes(bytes(damaged))
    bad = edgewise("decode", str(tmp_path / "bad.nnc"), "-o", str(tmp_path / "x.npz"))
    assert bad.returncode == 2 and "corrupted" in bad.stderr and not (tmp_path / "x.npz").exists()


@pytest.mark.slow
def test_run_with_fold_quantize_encode_writes_the_size_ladder(tmp_path, digits_cnn, edgewise):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "ladder", "models": [
        {"zoo": "digits-cnn", "prune": {"criterion": "l1", "rate": 0.3}, "fold": True,
         "quantize": {"method": "ecqx", "lambda": 0.1, "train": {"epochs": 1}}, "encode": True}]}))
    result = edgewise("run", str(recipe), "--out", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    root = tmp_path / "runs" / "ladder"
    ladder = json.loads((root / "digits-cnn" / "size_ladder.json").read_text())
    assert [r["stage"] for r in ladder][::2] == ["float32", "ecqx 4-bit packed"]
    assert ladder[1]["stage"].startswith("pruned l1: MACs -") and ladder[3]["stage"] == "NNCodec bitstream"
    sizes = [r["bytes"] for r in ladder]
    assert sizes == sorted(sizes, reverse=True)
    nnc = root / "digits-cnn" / "encode" / "model.nnc"
    assert ladder[-1]["bytes"] == nnc.stat().st_size
    rows = json.loads((root / "results.json").read_text())
    assert rows[-1]["score"] == rows[-2]["score"]  # lossless coding
    assert "## Size ladder of digits-cnn" in (root / "report.md").read_text()


@pytest.mark.slow
def test_export_deploy_and_bundle_verify_commands(tmp_path, digits_mlp, edgewise):
    assert edgewise("quantize", "digits-mlp", "-o", str(tmp_path / "q.pt"), "--method", "uniform").returncode == 0
    result = edgewise("export", str(tmp_path / "q.pt"), "-o", str(tmp_path / "q.onnx"),
                      "--records", str(tmp_path / "q.npz"))
    assert result.returncode == 0, result.stderr
    assert "3 4-bit layers" in result.stderr and "as shipped in ONNX Runtime" in result.stderr
    no_trt = edgewise("export", "digits-mlp", "-o", str(tmp_path / "f.onnx"), "--tensorrt")
    assert no_trt.returncode == 2 and "TensorRT is unavailable here" in no_trt.stderr
    assert len(no_trt.stderr.strip().splitlines()) <= 2 and "trtexec --onnx=f.onnx" in no_trt.stderr
    # a command that fails writes nothing: TensorRT is checked before the export (issue: a README line overwrote the
    # 4-bit file of the line before with a float one, then said TensorRT was missing)
    assert not (tmp_path / "f.onnx").exists()
    deployed = edgewise("deploy", str(tmp_path / "q.pt"), "-o", str(tmp_path / "bundle"),
                        "--records", str(tmp_path / "q.npz"))
    assert deployed.returncode == 0, deployed.stderr
    assert edgewise("bundle", "verify", str(tmp_path / "bundle")).returncode == 0
    (tmp_path / "bundle" / "model.onnx").write_bytes(b"changed")
    tampered = edgewise("bundle", "verify", str(tmp_path / "bundle"))
    assert tampered.returncode == 2 and "changed or missing: model.onnx" in tampered.stderr


@pytest.mark.slow
def test_emulate_command_prints_the_emulated_table(tmp_path, digits_mlp, edgewise):
    assert edgewise("quantize", "digits-mlp", "-o", str(tmp_path / "q.pt"), "--method", "ecq").returncode == 0
    result = edgewise("emulate", str(tmp_path / "q.npz"), "--target", "fantastic4-asic")
    assert result.returncode == 0, result.stderr
    assert "all figures emulated" in result.stderr and "total" in result.stderr and "(emulated)" in result.stderr
    bad = edgewise("emulate", str(tmp_path / "q.npz"), "--target", "jetson-mars")
    assert bad.returncode == 2 and "unknown target 'jetson-mars'" in bad.stderr
    entropy = edgewise("emulate", str(tmp_path / "q.npz"), "--calibrator", "entropy")
    assert entropy.returncode == 0 and "integer kernel test accuracy" in entropy.stderr
    bad = edgewise("emulate", str(tmp_path / "q.npz"), "--calibrator", "minmax")
    assert bad.returncode == 2 and "unknown activation calibrator 'minmax'" in bad.stderr
    for option, value, message in (("--activation-bits", "0", "activation bit width 0 is outside 2..16"),
                                   ("--acc-bits", "0", "accumulator width 0 is outside 8..64")):
        bad = edgewise("emulate", str(tmp_path / "q.npz"), option, value)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr


def test_targets_lists_every_profile_with_availability(edgewise):
    result = edgewise("targets")
    assert result.returncode == 0
    for name in ("x86-host", "jetson-nano", "jetson-xavier-nx", "jetson-orin-nano", "jetson-orin-nx",
                 "jetson-agx-orin", "jetson-agx-thor", "nvidia-gpu", "fantastic4-fpga", "fantastic4-asic"):
        assert name in result.stderr
    assert "estimated" in result.stderr and "emulated" in result.stderr


def test_piped_tables_keep_whole_names_and_rows():
    """Piped to a file (no terminal, no COLUMNS), a table is not cut to 80 columns: the two FantastIC4 rows and
    the AGX rows stay distinguishable, each on one line with its reason."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run([sys.executable, "-m", "edgewise", "targets"], capture_output=True, text=True, env=env,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stderr.splitlines() if line.count("│") > 2}
    assert {"fantastic4-asic", "fantastic4-fpga", "jetson-agx-orin", "jetson-agx-thor"} <= set(rows)
    assert "calibrated on published measurements" in rows["jetson-agx-orin"]


@pytest.mark.slow
def test_bench_command_on_host_board_and_emulator(tmp_path, edgewise):
    import torch

    from edgewise import compress, export
    from edgewise.zoo.models import build_model

    model = build_model("mlp", (1, 8, 8), 10, hidden=[32]).eval()
    q = compress.quantize(model, "ecq", 4, lam=0.1)
    export.to_onnx(q.model, torch.rand(2, 1, 8, 8), tmp_path / "q.onnx", q.records)
    missing = edgewise("bench", str(tmp_path / "q.onnx"))  # its batch dimension is dynamic: nothing is assumed
    said = " ".join(missing.stderr.split())
    assert missing.returncode == 2 and "dynamic dimensions" in said and "--batch N sets 'batch'" in said
    host = edgewise("bench", str(tmp_path / "q.onnx"), "--batch", "1", "--target", "x86-host", "--duration", "0.1",
                    "--iterations", "20", "--out", str(tmp_path / "r.json"))
    assert host.returncode == 0, host.stderr
    assert "latency (measured, onnxruntime (CPUExecutionProvider))" in host.stderr
    assert "memory (measured)" in host.stderr
    assert "energy: unavailable" in host.stderr
    assert json.loads((tmp_path / "r.json").read_text())["latency"]["kind"] == "measured"
    one = (str(tmp_path / "q.onnx"), "--input", "x:1x1x8x8")
    assert "latency (emulated)" in edgewise("bench", *one, "--target", "fantastic4-asic").stderr
    assert "latency (estimated)" in edgewise("bench", *one, "--target", "jetson-nano").stderr
    bad = edgewise("bench", str(tmp_path / "q.onnx"), "--target", "jetson-mars")
    assert bad.returncode == 2 and "unknown target" in bad.stderr


def test_prune_detect_prunes_a_yolo_file_by_its_own_detections(tmp_path, edgewise):
    """A detector saved with torch.save and a .npz of images (no labels): scored by its strongest detections of the
    chosen class, the box branch those scores do not reach left whole with the reason."""
    tasks = pytest.importorskip("ultralytics.nn.tasks")
    import numpy as np
    import torch

    torch.manual_seed(0)
    torch.save(tasks.DetectionModel("yolov8n.yaml", nc=3, verbose=False).eval(), tmp_path / "yolo.pt")
    np.savez(tmp_path / "images.npz", x=np.random.default_rng(0).random((2, 3, 96, 96), dtype=np.float32))
    out = tmp_path / "p.pt"
    result = edgewise("prune", str(tmp_path / "yolo.pt"), "-o", str(out), "--detect", "--data",
                      str(tmp_path / "images.npz"), "--class", "1", "--criterion", "lrp", "--rate", "0.3")
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.with_suffix(".prune.json").read_text())
    assert summary["params_after"] < 0.85 * summary["params_before"]
    assert "does not depend on it" in summary["left_whole"]["model.22.cv2.0.0.conv"]
    unknown = edgewise("prune", str(tmp_path / "yolo.pt"), "-o", str(out), "--detect", "--data",
                       str(tmp_path / "images.npz"), "--class", "zebra")
    assert unknown.returncode == 2 and "unknown detection class 'zebra'" in unknown.stderr
    no_images = edgewise("prune", str(tmp_path / "yolo.pt"), "-o", str(out), "--detect")
    assert no_images.returncode == 2 and "--detect needs reference images" in no_images.stderr


def test_ctrl_c_says_what_is_kept(monkeypatch, edgewise, tmp_path):
    from edgewise import commands

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "encode_file", interrupted)
    (tmp_path / "q.npz").write_bytes(b"records")
    result = edgewise("encode", str(tmp_path / "q.npz"), "-o", str(tmp_path / "x.nnc"))
    assert result.returncode == 130 and "interrupted; no file was left half-written" in result.stderr


@pytest.mark.parametrize("args", [["--version"], ["recipe", "check", "examples/sweep.yaml"], ["zoo", "list"],
                                  ["targets"], ["recipe", "show"]])
def test_the_first_commands_a_newcomer_types_import_no_torch(args):
    """They answer from static information: importing torch alone takes about 2 s on a 2-core machine."""
    code = ("import sys; from edgewise.cli import main; sys.argv = ['edgewise', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
            "heavy = sorted(m for m in ('torch', 'torchvision', 'zennit', 'onnx', 'onnxruntime', 'scipy') "
            "if m in sys.modules)\nprint('HEAVY', heavy, code)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                            check=False, cwd=Path(__file__).resolve().parents[2])
    assert "HEAVY [] 0" in result.stdout or "HEAVY [] None" in result.stdout, (result.stdout, result.stderr[-2000:])
