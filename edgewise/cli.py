"""The `edgewise` command: a thin typer layer over the Python API."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import astuple
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer
from rich.markup import escape
from rich.table import Table

from edgewise import __version__
from edgewise.base.paths import MODEL_OR_BUNDLE, existing, named_inputs
from edgewise.board.errors import EdgewiseError, UserError, filesystem_error
from edgewise.core.console import console

if TYPE_CHECKING:
    from edgewise.commands import Outcome

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Compress networks with explainability, export them for edge hardware, measure the cost.")
zoo_app = typer.Typer(no_args_is_help=True, help="The zoo of reference architectures, models and data.")
recipe_app = typer.Typer(no_args_is_help=True, help="Recipes: show and check them.")
bundle_app = typer.Typer(no_args_is_help=True, help="Deploy bundles: check them, make signing keys.")
app.add_typer(zoo_app, name="zoo")
app.add_typer(recipe_app, name="recipe")
app.add_typer(bundle_app, name="bundle")

TRUST_HELP = ("Unpickle a model file that names code of your own (its classes run while it loads): only for files "
              "you trust")
LEFT_WHOLE_SHOWN = 5  # groups left whole that `edgewise prune` names before it counts the rest
CODE_HELP = ("The .py file or package that defines the model's classes (a torch.save(model) from a training script): "
             "allows that code alone, and files written from the model remember it; several comma-separated "
             "(model.py,omegaconf) where the model holds objects of other packages")
SCORE_HELP = ("Data without labels is scored by agreement with the source model, as its outputs say; name how: "
              "classification (top-1), segmentation (per-pixel mIoU), sequence (greedy CTC strings), embedding "
              "(cosine), boxes (a one-stage detector's box F1), regression (1 - relative error)")
DEVICE_HELP = ("Where torch computes (training, scores, fine-tuning, QAT): auto (the GPU when there is one), cpu, "
               "cuda, cuda:N")


def _version(value: bool) -> None:
    if value:
        print(f"edgewise {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Edgewise: compressed networks on edge hardware, and what they cost there."""


@app.command()
def run(
    recipe: Annotated[Path | None, typer.Argument(help="Recipe YAML; the embedded default when omitted.")] = None,
    out: Annotated[Path, typer.Option(help="Parent directory of run directories.")] = Path("runs"),
    name: Annotated[str | None, typer.Option(help="Run name (default: the recipe's name).")] = None,
    force: Annotated[list[str] | None, typer.Option(
        help="Rerun from this stage on even if its earlier result could be reused: all, STAGE or MODEL/STAGE "
             "(repeatable).")] = None,
    jobs: Annotated[int, typer.Option(help="Sweeps: configurations run at once in local worker processes.")] = 2,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="Sweeps: run the configurations as Ray tasks on the cluster at this address "
                      "(needs the ray extra).")] = None,
    device: Annotated[str | None, typer.Option(help=DEVICE_HELP + " (default: the recipe's device, auto).")] = None,
) -> None:
    """Run a recipe: build or load each model, run its stages, write the run directory and the report.

    Stages whose parameters and inputs are unchanged since an earlier run into the same directory
    are reused, so a repeated or interrupted run only does the missing work. A recipe with a
    `sweep:` runs every configuration as its own run and writes a report comparing them.
    """
    from edgewise.recipe import load_recipe

    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}", "give the number of worker processes, e.g. --jobs 2")
    parsed = load_recipe(recipe)  # a recipe refused before torch and ray are imported
    if device is not None:
        parsed = _config(type(parsed), **{**parsed.model_dump(by_alias=True), "device": device})
    if ray and not parsed.sweep:
        raise UserError("--ray runs the configurations of a sweep, and this recipe has no sweep: section",
                        "add a sweep: section (axes -> values), or run without --ray")
    from edgewise.pipeline import run_recipe
    from edgewise.sweep import run_sweep

    if parsed.sweep:
        swept = run_sweep(parsed, out=out, name=name, jobs=jobs, ray_address=ray, force=force or ())
        console.print(f"sweep directory: {swept.root}\nreport (html): {swept.reports['html']}")
        return
    result = run_recipe(parsed, out=out, name=name, force=force or ())
    if result.rows:
        from edgewise.report.summary import summary_section

        summary = summary_section(result.rows, result.bench)
        console.print(_table(summary.title, summary.columns, summary.rows))
    console.print(f"run directory: {result.root}")
    for kind in ("html", "markdown"):
        if kind in result.reports:
            console.print(f"report ({kind}): {result.reports[kind]}")


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A titled terminal table of `rows` under `columns`."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*map(str, row))
    return table


@app.command()
def prune(
    model: Annotated[str, typer.Argument(help="Zoo reference (e.g. digits-cnn), a model .pt file or an .onnx file "
                                              "(converted to torch; give --data).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the pruned model (.pt).")],
    criterion: Annotated[str, typer.Option(help="lrp, gradient, taylor, l1, l2, hrank, apoz, activation, random.")]
    = "lrp",
    rate: Annotated[float | None, typer.Option(help="Fraction of prunable channels to remove, in [0, 1) (default "
                                                    "0.5).")] = None,
    target: Annotated[str | None, typer.Option(help="Instead of --rate, what to keep in the units you budget: "
                                                    "macs=0.7 (70% of the multiply-accumulates), params=0.5, "
                                                    "channels=0.8, or latency=0.7 / latency=2.5ms (measured in ONNX "
                                                    "Runtime on this CPU at batch 1, by timed trial cuts); the "
                                                    "ranking decides where.")] = None,
    schedule: Annotated[str, typer.Option(help="oneshot, iterative or adaptive.")] = "oneshot",
    scope: Annotated[str, typer.Option(help="global or layer ranking.")] = "global",
    max_layer_rate: Annotated[float, typer.Option(help="The largest share of one layer's channels that may go "
                                                       "(1.0: no limit).")] = 0.9,
    round_to: Annotated[int, typer.Option(help="Keep each cut group's channel count a multiple of this (8: the "
                                               "widths vector units and GPU kernels run fastest at; odd widths can "
                                               "make a pruned file slower than the unpruned one; 1: any width).")
                        ] = 8,
    data: Annotated[str | None, typer.Option(help="digits, rail, a .npz or an image folder (default: the model's).")]
    = None,
    classes: Annotated[list[str] | None, typer.Option("--class", help="Restrict scores to a class (repeatable).")]
    = None,
    samples: Annotated[int, typer.Option(help="Reference samples per class.")] = 10,
    ignore: Annotated[list[str] | None, typer.Option(help="A layer to leave whole (repeatable; names as the errors "
                                                          "and the report give them).")] = None,
    detect: Annotated[bool, typer.Option(help="The model is a detector (ultralytics YOLO, ew.DetectorHeads, an ONNX "
                                              "file of class scores or a map); --data "
                                              "is a .npz of images (x), scored by the model's own detections.")]
    = False,
    detections: Annotated[int, typer.Option(help="With --detect: detections per image relevance starts from.")] = 10,
    rule: Annotated[list[str] | None, typer.Option(help="With lrp: KIND=RULE (repeatable), e.g. conv=alpha2beta1, "
                                                        "which also follows inhibitory contributions (kinds: first, "
                                                        "conv, linear).")] = None,
    composite: Annotated[str | None, typer.Option(help="With lrp: a named rule composite (epsilon-plus-flat, "
                                                       "epsilon-alpha2beta1-flat, epsilon-gamma-flat, epsilon; --rule "
                                                       "overrides it per kind) or auto: each tried in a trial cut, "
                                                       "repaired, and the one whose outputs stay closest to the "
                                                       "unpruned network's chosen (the default without --rule or "
                                                       "--class).")] = None,
    repair: Annotated[str, typer.Option(help="After the cut: all (reconstruct the layers that read pruned channels, "
                                             "then re-estimate batch-norm statistics, each kept where it helps), "
                                             "reconstruct, batchnorm or none.")] = "all",
    tune_steps: Annotated[int, typer.Option(help="Fine-tuning steps after the cut, distilled from the unpruned model "
                                                 "(no labels read) or on the data's own labels.")] = 0,
    tune_targets: Annotated[str, typer.Option(help="What tuning pulls towards: auto (distill where the data has no "
                                                   "labels), distill or labels.")] = "auto",
    device: Annotated[str, typer.Option(help=DEVICE_HELP + ".")] = "auto",
    verbose: Annotated[bool, typer.Option(help="List every group left whole, with its reason.")] = False,
    latency: Annotated[bool, typer.Option(help="Export both models and time them in ONNX Runtime on this CPU at "
                                               "batch 1: latency before and after.")] = False,
    trust_model_file: Annotated[bool, typer.Option("--trust-model-file", help=TRUST_HELP)] = False,
    code: Annotated[str | None, typer.Option(help=CODE_HELP + ".")] = None,
    score: Annotated[str | None, typer.Option(help=SCORE_HELP + ".")] = None,
) -> None:
    """Prune a model's channels (physically removed) and print the per-layer report."""
    named_inputs(model, data, code)
    _allow(code)
    from edgewise.stages.prune_config import PruneConfig

    malformed = [r for r in rule or [] if r.count("=") != 1]
    if malformed:
        raise UserError(f"--rule {malformed[0]} is not KIND=RULE", "give e.g. --rule conv=alpha2beta1")
    kinds = [r.split("=")[0] for r in rule or []]
    twice = sorted({k for k in kinds if kinds.count(k) > 1})
    if twice:
        raise UserError(f"--rule gives the layer kind {twice[0]} more than one rule "
                        f"({', '.join(r for r in rule if r.startswith(twice[0] + '='))})", "give one rule per kind")
    unit, goal_ms = "channels", None
    if target is not None:
        if rate is not None:
            raise UserError("--rate and --target both say how much to cut", "give one of them")
        from edgewise.compress.budget import parse_target

        unit, rate, goal_ms = astuple(parse_target(target))
    config = _config(PruneConfig, criterion=criterion, rate=0.5 if rate is None else rate, unit=unit,
                     latency_ms=goal_ms,
                     schedule=schedule, scope=scope,
                     max_layer_rate=max_layer_rate, round_to=round_to, samples_per_class=samples,
                     ignore=ignore or [], options={"rules": dict(r.split("=") for r in rule)} if rule else {},
                     repair=repair, tune_steps=tune_steps, tune_targets=tune_targets, composite=composite)
    from edgewise.commands import prune_detector_file, prune_file  # torch: after every check of the command line

    if detect:
        if data is None:
            raise UserError("--detect needs reference images", "pass --data images.npz (an array x of images)")
        result, outcome = prune_detector_file(model, out, config, data, classes, detections, device,
                                              trust_model_file, latency)
    else:
        result, outcome = prune_file(model, out, config, data, classes, device, trust_model_file, score, latency)
    table = Table(title=f"{result.criterion}, {result.schedule}", title_justify="left")
    for column in ("layer", "channels", "pruned", "parameters", "MACs"):
        table.add_column(column)
    for r in result.layers:
        table.add_row(r["layer"], f"{r['channels_before']} -> {r['channels_after']}", f"{r['rate']:.0%}",
                      f"{r['params_before']:,} -> {r['params_after']:,}",
                      f"{r['macs_before']:,} -> {r['macs_after']:,}")
    console.print(table)
    narrowest = result.narrowest
    if narrowest:
        console.print(f"narrowest layer: {narrowest['layer']}, {narrowest['channels_before']} -> "
                      f"{narrowest['channels_after']} channels")
    whole = list(result.left_whole.items())
    shown = whole if verbose or len(whole) <= LEFT_WHOLE_SHOWN + 1 else whole[:LEFT_WHOLE_SHOWN]
    for group, why in shown:
        console.print(f"left whole: {group}: {why}")
    if len(shown) < len(whole):
        console.print(f"left whole: {len(whole) - len(shown)} more groups, each with its reason in "
                      f"{Path(out).with_suffix('.prune.json')} (--verbose prints them)")
    from edgewise.stages.prune import latency_budget_line, step_lines

    for line in step_lines(result):
        console.print(line, markup=False)
    console.print(f"parameters {result.before.params:,} -> {result.after.params:,} (-{result.removed('params'):.1%}), "
                  f"MACs {result.before.macs:,} -> {result.after.macs:,} (-{result.removed('macs'):.1%}); "
                  f"written to {out}")
    if result.latency:
        console.print(latency_budget_line(result), markup=False)
    if result.shortfall:
        console.print(f"warning: {result.shortfall}", markup=False)
    for note in outcome.notes:
        console.print(note, markup=False)
    console.print(_cost_line(outcome), markup=False)


def _cost_line(outcome: Outcome) -> str:
    """A command's closing line: the score before and after, and the file it wrote with its size."""
    if outcome.before is None:
        score = outcome.score_name
    else:
        score = f"score {outcome.before:.4f} -> {outcome.after:.4f} ({outcome.score_name})"
    return f"cost: {score}; {outcome.path}: {outcome.bytes:,} bytes {outcome.bytes_are}".rstrip()


def _allow(code: str | None) -> None:
    """Allow the classes of the code the user named (--code) in the model files this command loads."""
    if code is not None:
        from edgewise.core.usercode import allow_codes

        allow_codes(code)


def _config(model_cls, **values):
    """Validate CLI options through the recipe's model, so both give the same one-line errors."""
    from pydantic import ValidationError

    try:
        return model_cls(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a check across options: the message names them
            raise UserError(message) from None
        raise UserError(f"--{str(error['loc'][0]).replace('_', '-')}: {message} (given {error.get('input')!r})"
                        ) from None


@app.command()
def quantize(
    model: Annotated[str, typer.Argument(help="Zoo reference or a model .pt file (e.g. a pruned one).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Quantized model (.pt); records go beside it (.npz).")],
    method: Annotated[str, typer.Option(help="uniform, ecq or ecqx.")] = "ecqx",
    bits: Annotated[int, typer.Option(help="Bit width, 2 to 8.")] = 4,
    lam: Annotated[str | None, typer.Option("--lambda", help="Entropy constraint (ECQ/ECQx): larger is sparser "
                                                             "(default 0.05); auto: the largest that keeps the "
                                                             "outputs on the data within 10% of lambda 0's error."
                                            )] = None,
    epochs: Annotated[int, typer.Option(help="Quantization-aware training epochs (0: post-training only).")] = 0,
    qat_targets: Annotated[str, typer.Option(help="What QAT pulls towards: distill (the float model's outputs), "
                                                  "labels (the data's), or auto: distill where the data has no "
                                                  "labels of its own.")] = "auto",
    block: Annotated[int | None, typer.Option(help="A step per block of this many input weights (16, 32, 64, 128, "
                                                   "256).")] = None,
    per_channel: Annotated[bool | None, typer.Option(
        "--per-channel/--per-layer", help="A step per output channel (the default without --block) or one per "
                                          "layer."
    )] = None,
    rounding: Annotated[str, typer.Option(help="compensated (GPTQ-style, over each layer's inputs on the data), "
                                               "learned (AdaRound-style, uniform grids), nearest, or auto: "
                                               "compensated where data is read.")] = "auto",
    data: Annotated[str | None, typer.Option(help="digits, rail, a .npz or an image folder.")] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP + ".")] = "auto",
    trust_model_file: Annotated[bool, typer.Option("--trust-model-file", help=TRUST_HELP)] = False,
    code: Annotated[str | None, typer.Option(help=CODE_HELP + ".")] = None,
    score: Annotated[str | None, typer.Option(help=SCORE_HELP + ".")] = None,
) -> None:
    """Quantize a model's weights (uniform, ECQ or ECQx) and print sparsity and entropy per layer."""
    named_inputs(model, data, code)
    _allow(code)
    from edgewise.compress.quant import quantizer_settings
    from edgewise.stages.quantize_config import QuantizeConfig
    from edgewise.zoo.training_config import QATConfig

    if epochs < 0:
        raise UserError(f"--epochs: {epochs} is negative", "give 0 (post-training only) or more epochs of QAT")
    targets = get_args(QATConfig.model_fields["targets"].annotation)
    if qat_targets not in targets:
        raise UserError(f"--qat-targets: unknown {qat_targets!r}", f"use one of {', '.join(targets)}")
    train = _config(QATConfig, epochs=epochs, targets=qat_targets) if epochs > 0 else None
    given: dict[str, object] = {"lambda": lam} if lam is not None else {}  # refused, not dropped, where not taken
    if per_channel is not None:
        given["per_channel"] = per_channel
    elif block is None and "per_channel" in quantizer_settings(method):  # trained layers' channels differ in scale
        given["per_channel"] = True
    config = _config(QuantizeConfig, method=method, bits=bits, train=train, block=block, rounding=rounding, **given)
    from edgewise.commands import quantize_file  # torch: after every check of the command line

    result, outcome = quantize_file(model, out, config, data, device, trust_model_file, score)
    summary = result.summary()
    table = Table(title=f"{method} {bits}-bit", title_justify="left")
    for column in ("layer", "shape", "sparsity", "entropy [bit]"):
        table.add_column(column)
    for layer in summary["layers"]:
        table.add_row(layer["layer"], "x".join(map(str, layer["shape"])), f"{layer['sparsity']:.1%}",
                      f"{layer['entropy_bits']:.2f}")
    console.print(table)
    console.print(f"{summary['weights']:,} weights, sparsity {summary['sparsity']:.1%}, entropy "
                  f"{summary['entropy_bits']:.2f} bit/weight; written to {out} and {out.with_suffix('.npz')}")
    for note in outcome.notes:
        console.print(note, markup=False)
    console.print(_cost_line(outcome), markup=False)


@app.command()
def encode(
    records: Annotated[Path, typer.Argument(help="Quantized records (.npz written by `edgewise quantize`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The NNCodec bitstream to write (.nnc).")],
) -> None:
    """Code quantized weights losslessly with NNCodec; the round trip is checked before writing."""
    named_inputs(records)
    from edgewise.commands import encode_file

    stream = encode_file(records, out)
    console.print(f"{stream.weights:,} weights -> {len(stream.data):,} bytes "
                  f"({stream.bits_per_weight:.2f} bit/weight), round trip bit-exact; written to {out}")


@app.command()
def decode(
    bitstream: Annotated[Path, typer.Argument(help="An NNCodec bitstream (.nnc) written by `edgewise encode`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Records file to write (.npz).")],
) -> None:
    """Decode an NNCodec bitstream back into quantized records; a damaged file is an error."""
    named_inputs(bitstream)
    from edgewise.commands import decode_file

    layers, _ = decode_file(bitstream, out)
    console.print(f"{len(layers)} layers decoded; written to {out}")


@app.command("export")
def export_command(
    model: Annotated[str, typer.Argument(help="Zoo reference or a model .pt file (pruned or quantized).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")],
    records: Annotated[Path | None, typer.Option(help="Quantized records (.npz): store those layers as INT4.")]
    = None,
    tensorrt: Annotated[bool, typer.Option("--tensorrt", help="Also build a TensorRT engine (needs TensorRT + GPU).")]
    = False,
    precision: Annotated[str, typer.Option(help="TensorRT precision: fp32, fp16, int8, int4.")] = "fp16",
    data: Annotated[str | None, typer.Option(help="digits, rail, a .npz or an image folder (probe inputs; with "
                                                  "--w4a8 its training split calibrates the activations).")] = None,
    w4a8: Annotated[bool, typer.Option("--w4a8", help="8-bit activations too (needs --records): Q/DQ for int8 "
                                                      "kernels (ONNX Runtime's QLinearConv and QGemm, TensorRT).")]
    = False,
    calibrator: Annotated[str, typer.Option(help="With --w4a8: mse, max, percentile or entropy.")] = "mse",
    keep_float: Annotated[str, typer.Option(help="With --w4a8: nodes whose activations stay float: auto (those "
                                                 "whose 8-bit activations break the network, found by measurement), "
                                                 "none, or node names separated by commas.")] = "auto",
    activations: Annotated[str, typer.Option(help="With --w4a8: uint8 (ONNX Runtime on x86, the FantastIC4 "
                                                  "kernel) or int8 (symmetric, TensorRT).")] = "uint8",
    calibration_samples: Annotated[int, typer.Option(help="With --w4a8: training samples calibrated on.")] = 256,
    plain_variant: Annotated[str, typer.Option(help="With --records: also write NAME.plain.onnx, the file as a plain "
                                                    "ONNX Runtime session runs it fast (4-bit weights stored "
                                                    "dequantized): auto (when a plain session runs the file slower "
                                                    "than the kit's), always or never.")] = "auto",
    trust_model_file: Annotated[bool, typer.Option("--trust-model-file", help=TRUST_HELP)] = False,
    code: Annotated[str | None, typer.Option(help=CODE_HELP + ".")] = None,
    score: Annotated[str | None, typer.Option(help=SCORE_HELP + ".")] = None,
) -> None:
    """Export a model to ONNX (pruned shapes, INT4 weights with --records, 8-bit activations with --w4a8), verified
    against torch."""
    named_inputs(model, records, data, code)
    _allow(code)
    from edgewise.stages.export_config import ExportConfig, W4A8Config

    listed = keep_float if keep_float in ("auto", "none") else [n.strip() for n in keep_float.split(",") if n.strip()]
    options = _config(W4A8Config, calibrator=calibrator, activations=activations, samples=calibration_samples,
                      keep_float=listed) if w4a8 else None
    policies = get_args(ExportConfig.model_fields["plain_variant"].annotation)
    if plain_variant not in policies:
        raise UserError(f"--plain-variant: unknown {plain_variant!r}", f"use one of {', '.join(policies)}")
    from edgewise.commands import export_file  # torch: after every check of the command line

    result = export_file(model, out, records, data, precision if tensorrt else None, options, trust_model_file,
                         score, plain_variant)
    against = "its exact run" if w4a8 else "torch"
    console.print(f"{out}: {result['bytes']:,} bytes, opset {result['opset']}, {len(result['quantized_layers'])} "
                  f"4-bit layers{' with 8-bit activations' if w4a8 else ''}; ONNX Runtime vs torch "
                  f"{result['rel_diff']:.1e} (exact), {result['fast_rel_diff']:.1e} (fast session, checked against "
                  f"{against})")
    if "float_nodes_line" in result:
        console.print(result["float_nodes_line"], markup=False)
    if "runtime_line" in result:
        console.print(result["runtime_line"], markup=False)
    if "source_rel_diff" in result:
        console.print(f"against the ONNX file it came from ({result['source_onnx']}): outputs differ by "
                      f"{result['source_rel_diff']:.3g} of their largest value on the images")
    elif "source_onnx" in result:
        console.print(f"against the ONNX file it came from ({result['source_onnx']}): test score "
                      f"{result['source_score']:.4f} there, {result['onnx_score']:.4f} here; the two agree on "
                      f"{result['source_agreement']:.1%} of the test samples' predictions")
    if "torch_score" in result:
        console.print(f"cost: score {result['torch_score']:.4f} in torch, {result['onnx_score']:.4f} as shipped in "
                      f"ONNX Runtime ({result['score_name']}); {out}: {result['bytes']:,} bytes", markup=False)
    else:
        console.print(f"cost: no labels, so a detector is checked by its outputs, not scored; {out}: "
                      f"{result['bytes']:,} bytes", markup=False)


@app.command()
def deploy(
    model: Annotated[str, typer.Argument(help="Zoo reference or a model .pt file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write.")],
    records: Annotated[Path | None, typer.Option(help="Quantized records (.npz) for INT4 weights.")] = None,
    bitstream: Annotated[Path | None, typer.Option(help="NNCodec bitstream (.nnc) to ship along.")] = None,
    tar: Annotated[bool, typer.Option("--tar", help="Write a .tar.gz instead of a directory.")] = False,
    to: Annotated[str | None, typer.Option(help="Copy the bundle to user@host:/path with scp.")] = None,
    precision: Annotated[str, typer.Option(help="TensorRT precision for the board's trtexec command.")] = "fp16",
    data: Annotated[str | None, typer.Option(help="digits, rail, a .npz or an image folder (probe inputs).")] = None,
    trust_model_file: Annotated[bool, typer.Option("--trust-model-file", help=TRUST_HELP)] = False,
    code: Annotated[str | None, typer.Option(help=CODE_HELP + ".")] = None,
    sign_key: Annotated[Path | None, typer.Option(help="Sign the manifest with this key file (edgewise bundle "
                                                       "keygen); run.py --key then refuses a changed bundle.")]
    = None,
) -> None:
    """Write a deploy bundle: ONNX, bitstream, manifest with hashes and probe, the board runner (run.py)."""
    named_inputs(model, records, bitstream, data, code)
    _allow(code)
    from edgewise.commands import deploy_file

    path = deploy_file(model, out, records, bitstream, data, tar, to, precision, trust_model_file, sign_key)
    console.print(f"bundle written{' and signed' if sign_key else ''} and verified: {path}"
                  + (f"; copied to {to}" if to else ""))


@app.command()
def emulate(
    model: Annotated[Path, typer.Argument(help="Quantized MLP records (.npz from `edgewise quantize`) or a "
                                                "4-bit .onnx (an MLP or a CNN; a W4A8 file with its own scales).")],
    target: Annotated[str, typer.Option(help="fantastic4-fpga or fantastic4-asic.")] = "fantastic4-asic",
    data: Annotated[str, typer.Option(help="Data for calibration and accuracy: digits, a .npz, a folder.")] = "digits",
    activation_bits: Annotated[int, typer.Option(help="Activation bit width.")] = 8,
    calibrator: Annotated[str, typer.Option(help="Activation ranges: max, percentile (99.99), entropy (KL, as "
                                                 "TensorRT) or mse.")] = "max",
    acc_bits: Annotated[int, typer.Option(help="Accumulator width in bits (overflow is an error).")] = 32,
) -> None:
    """Run a 4-bit MLP or CNN through the FantastIC4 integer kernel and print the emulated per-layer costs (a
    convolution as its weight matrix times one input vector per output pixel)."""
    named_inputs(model, data)
    from edgewise.commands import emulate_file

    _, costs, accuracy = emulate_file(model, target, data, activation_bits, acc_bits, calibrator)
    table = Table(title=f"{target} (all figures emulated)", title_justify="left")
    for column in ("layer", "shape", "pixels", "representation", "bytes", "additions", "mults", "cycles", "latency",
                   "energy"):
        table.add_column(column, justify="left" if column in ("layer", "representation") else "right")
    for layer in costs["layers"]:
        table.add_row(layer["layer"], f"{layer['outputs']}x{layer['inputs']}", f"{layer['positions']:,}",
                      layer["representation"],
                      f"{layer['weight_bytes']:,}", f"{layer['additions']:,}", f"{layer['multiplications']:,}",
                      f"{layer['cycles']:,}", f"{layer['latency_s'] * 1e9:,.1f} ns",
                      f"{layer['energy_j'] * 1e9:,.3f} nJ")
    t = costs["total"]
    table.add_row("total", "", "", "", f"{t['weight_bytes']:,}", f"{t['additions']:,}", f"{t['multiplications']:,}",
                  f"{t['cycles']:,}", f"{t['latency_s'] * 1e9:,.1f} ns", f"{t['energy_j'] * 1e9:,.3f} nJ")
    console.print(table)
    console.print(f"integer kernel test accuracy {accuracy:.4f}; {t['throughput_per_s']:,.0f} inferences/s, "
                  f"{t['energy_per_inference_j'] * 1e9:,.3f} nJ per inference, additions saved by zeros "
                  f"{t['additions_saved']:.0%} (emulated)")


@app.command("targets")
def targets_command() -> None:
    """List the hardware targets, whether they run here, and how their figures are obtained."""
    from edgewise.bench.target_kinds import all_targets
    from edgewise.targets import load_target

    table = Table(title="Targets", title_justify="left")
    for column in ("target", "kind", "backends", "figures here", "energy here", "why"):
        table.add_column(column)
    for row in all_targets():
        profile = load_target(row["target"])
        table.add_row(row["target"], profile["kind"], ", ".join(profile["backends"]), row["figures"], row["energy"],
                      row["why"])
    console.print(table)


@app.command("bench")
def bench_command(
    model: Annotated[Path, typer.Argument(help="An ONNX file or a deploy bundle directory.")],
    target: Annotated[str, typer.Option(help="A target from `edgewise targets`.")] = "x86-host",
    inputs: Annotated[list[str] | None, typer.Option(
        "--input", help="An input's shape, dtype or value: NAME:SHAPE[:DTYPE][=VALUE], e.g. x:1x3x640x640 or "
                        "sr:int64=16000 (repeatable); dynamic dimensions must be given.")] = None,
    arrays: Annotated[Path | None, typer.Option("--inputs", help="An .npz with one array per input name.")] = None,
    batch: Annotated[int | None, typer.Option(help="The size of a leading dynamic dimension.")] = None,
    duration: Annotated[float, typer.Option(help="Time at least this many seconds.")] = 1.0,
    iterations: Annotated[int, typer.Option(help="Time at least this many runs.")] = 100,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime intra-op threads (default: its own).")] = None,
    energy_window: Annotated[float, typer.Option(help="Seconds per energy window (60 for a careful study).")] = 2.0,
    energy_repeats: Annotated[int, typer.Option(help="Energy windows to take the median of.")] = 3,
    cpus: Annotated[str | None, typer.Option(help="Pin the measurement to these CPUs, e.g. 0 or 0,1.")] = None,
    precision: Annotated[str | None, typer.Option(help="Boards: the TensorRT engine precision the estimate assumes "
                                                       "(fp32, fp16, int8; default fp16).")] = None,
    backend: Annotated[str, typer.Option(help="On a Jetson: auto (ONNX Runtime on TensorRT, CUDA or CPU, as "
                                               "installed), onnxruntime, or trtexec (a TensorRT engine).")] = "auto",
    result: Annotated[Path | None, typer.Option(help="A board's result.json (from the bundle's run.py).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the result record as JSON here.")] = None,
) -> None:
    """Latency, memory and energy of a model on a target, each marked measured, emulated, estimated or unavailable."""
    named_inputs(model, arrays, result)
    existing(model, MODEL_OR_BUNDLE)
    from edgewise.base.atomic import write_json
    from edgewise.bench.benchmark import benchmark
    from edgewise.bench.target_bench import BenchConfig
    from edgewise.report.figures import record_lines

    try:
        pinned = tuple(int(c) for c in cpus.split(",")) if cpus else None
    except ValueError:
        raise UserError(f"--cpus {cpus!r} is not a comma-separated list of CPU numbers",
                        "use e.g. --cpus 0,1") from None
    config = BenchConfig(iterations=iterations, duration_s=duration, threads=threads, cpus=pinned, backend=backend,
                         energy_window_s=energy_window, energy_repeats=energy_repeats)
    record = benchmark(model, target, config, result, inputs or (), arrays, batch, precision)
    for line in record_lines(record):
        console.print(line, markup=False)
    if out:
        write_json(out, record)


@bundle_app.command("verify")
def bundle_verify(path: Annotated[Path, typer.Argument(help="Bundle directory or .tar.gz.")],
                  key: Annotated[Path | None, typer.Option(help="Key file the manifest must be signed with.")]
                  = None) -> None:
    """Check the manifest, every file's hash, the signature (with --key) and the model's output on the probe."""
    from edgewise import export

    checked = export.verify_bundle(path, key)
    console.print(f"{path}: {checked['files']} files match the manifest; signature {checked['signature']}; probe "
                  f"output within tolerance ({checked['probe_rel_diff']:.1e})")


@bundle_app.command("keygen")
def bundle_keygen(out: Annotated[Path, typer.Argument(help="Key file to write (readable by you alone).")]) -> None:
    """Write a new random signing key for deploy --sign-key and bundle verify / run.py --key."""
    from edgewise.export.bundles import write_key

    write_key(out)
    console.print(f"key written to {out} (mode 0600); keep it off the boards' shared folders")


@recipe_app.command("show")
def recipe_show() -> None:
    """Print the embedded default recipe (a starting point for your own)."""
    print(resources.files("edgewise.recipes").joinpath("default.yaml").read_text(encoding="utf-8"), end="")


@recipe_app.command("check")
def recipe_check(recipe: Annotated[Path, typer.Argument(help="Recipe YAML to validate.")]) -> None:
    """Validate a recipe without running it."""
    from edgewise.recipe import load_recipe

    parsed = load_recipe(recipe)
    console.print(f"{recipe}: valid, {len(parsed.models)} model(s): {', '.join(m.name for m in parsed.models)}")
    if parsed.sweep:
        console.print(f"sweep of {len(parsed.configurations())} configurations over {', '.join(parsed.sweep)}")


@app.command("examples")
def examples_command(folder: Annotated[Path, typer.Argument(help="Folder to write them into.")] = Path("examples")
                     ) -> None:
    """Write the example recipes (a sweep, experts, your own torch or ONNX model, Jetson boards) and their
    prepare scripts into a folder; a file you changed there is kept."""
    from edgewise.examples import write_examples

    written, kept = write_examples(folder)
    console.print(f"{len(written)} example files written to {folder}/ (start with {folder}/README.md)")
    for path in kept:
        console.print(f"kept {path}: it differs from the example (your own edit)")


@zoo_app.command("list")
def zoo_list() -> None:
    """List the zoo's architectures, data sources and reference models."""
    from edgewise.zoo import catalogue

    for title, columns, rows in catalogue():
        console.print(_table(title, columns, rows))


# the exit code of each kind of error, most specific first
EXIT_CODES: tuple[tuple[type[EdgewiseError], int], ...] = ((UserError, 2), (EdgewiseError, 1))


def exit_code(error: EdgewiseError) -> int:
    """The command's exit code for `error`: 2 for what the user can correct, 1 for a failure inside the kit."""
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))


def _error(problem: str, fix: str, code: int) -> SystemExit:
    console.print(f"[bold red]error:[/bold red] {escape(problem)}", soft_wrap=True)
    if fix:
        console.print(f"  fix: {escape(fix)}", soft_wrap=True)
    return SystemExit(code)


INTERRUPTED = 130  # the shell's code for a process ended by SIGINT (128 + 2)


def main() -> None:
    """Entry point: run the app; a kit error or a command line the parser refuses prints one or two lines and exits
    2 (user) or 1 (internal)."""
    try:  # typer vendors click from 0.25 on
        from typer._click import exceptions as parsing
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions as parsing

    try:
        code = app(standalone_mode=False)
    except parsing.NoArgsIsHelpError as exc:  # `edgewise` or a group alone: its help, as asked
        print(exc.ctx.get_help())
        raise SystemExit(0) from None
    except parsing.UsageError as exc:  # an unknown option, a value of the wrong type, a missing argument
        where = exc.ctx.command_path if exc.ctx is not None else "edgewise"
        raise _error(exc.format_message(), f"see {where} --help", 2) from None
    except EdgewiseError as exc:
        raise _error(exc.problem, exc.fix, exit_code(exc)) from None
    except OSError as exc:  # the file system refused (read-only, full, a loop) where no check of ours stood
        refusal = filesystem_error(exc)
        if refusal is None:
            raise
        raise _error(refusal.problem, refusal.fix, 2) from None
    except (KeyboardInterrupt, typer.Abort):
        code = INTERRUPTED
    if code == INTERRUPTED:  # typer returns Ctrl-C as this exit code rather than raising it
        console.print("interrupted; finished stages are kept in the run directory (run again to resume)"
                      if "run" in sys.argv[1:2] else "interrupted; no file was left half-written")
    raise SystemExit(code if isinstance(code, int) else 0)


def entry() -> None:
    """The `edgewise` executable: `main`, then the process ends at once. Everything the command wrote is complete
    and flushed by then (atomic writes, finished workers), and tearing down torch, ONNX Runtime and Ray's modules
    one by one took seconds after the last line was printed."""
    import logging
    import os

    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
