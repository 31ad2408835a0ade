"""Single-stage operations on files, for the CLI's stage commands: resolve a model and its data, run one stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgewise import compress, export
from edgewise.base.atomic import atomic_path, write_bytes, write_json
from edgewise.base.device import device_of, on_device, resolve_device
from edgewise.base.paths import distinct_output
from edgewise.base.records import load_records, save_records
from edgewise.bench.latency import file_latency, module_latency
from edgewise.board.compare import relative_difference
from edgewise.board.errors import DataError, UserError, first_line
from edgewise.board.session import session_runner
from edgewise.compress.size import packed_bytes
from edgewise.core.modelio import load_model, save_model
from edgewise.export.bundles import check_target
from edgewise.export.onnx_records import records_from_onnx
from edgewise.export.plain_runtime import runtime_speeds
from edgewise.export.w4a8 import check_w4a8_records, float_nodes_line
from edgewise.runtime import IntegerMLP
from edgewise.stages.deploy import deploy_module
from edgewise.stages.deploy_config import DeployConfig
from edgewise.stages.export import export_verified, shipped_score
from edgewise.stages.export_config import W4A8Config
from edgewise.stages.prune import prune_as_configured, prune_model, tuner
from edgewise.stages.prune_config import PruneConfig
from edgewise.stages.quantize_config import QuantizeConfig
from edgewise.stages.scoring import class_score
from edgewise.zoo.agreement import Reference, module_reference, onnx_reference, source_labelled
from edgewise.zoo.cache import trained_model
from edgewise.zoo.data import DATA_SOURCES, FolderData, NpzData, load_data
from edgewise.zoo.dataset import UNLABELLED, Dataset
from edgewise.zoo.fit_check import check_module_fits, fitted_layout, module_takes, onnx_takes, with_model_classes
from edgewise.zoo.reference import REFERENCES
from edgewise.zoo.training import evaluate
from edgewise.zoo.userdata import read_npz


def data_from_argument(value: str) -> Dataset:
    """A data set from a CLI argument: a source name (digits, rail), a .npz file or a folder of class folders."""
    if value in ("digits", "rail"):
        return load_data(DATA_SOURCES[value]())
    path = Path(value).resolve()  # loads are cached by their spec: a relative path names other files elsewhere
    if path.suffix == ".npz":
        return load_data(NpzData(path=path))
    if path.is_dir():
        return load_data(FolderData(path=path))
    raise UserError(f"unknown data {value!r}", "give digits, rail, a .npz file or a folder with one folder per class")


def resolve_model(model: str, data: str | None = None, device: torch.device | None = None, trusted: bool = False,
                  loaded: tuple[nn.Module, dict[str, Any]] | None = None, score: str | None = None
                  ) -> tuple[nn.Module, dict[str, Any], Dataset]:
    """A model and its data from a zoo reference name or a model file (its card names the data, or `data` does); on
    `device` when given (a zoo model is then trained there), else on the CPU. `trusted`: the user consents to
    unpickling a file that names code of their own (edgewise.core.modelio.load_model); `loaded`: the file's module
    and card when the caller has read it already. Data without labels is labelled by the source model (the ONNX file
    or model file this one came from, else the model itself) and scored by agreement with it, as `score` names or as
    its outputs say (edgewise.zoo.agreement)."""
    device = device or torch.device("cpu")
    if model in REFERENCES:
        ref = REFERENCES[model]
        dataset = data_from_argument(data) if data else load_data(ref.data)
        trained = trained_model(ref.arch, dataset, ref.train, 0, ref.arch_args, label=f"train {model}", device=device)
        card = dict(trained.card)
        if not data:  # files written from this model can name their data
            card["data_spec"] = ref.data.model_dump(mode="json")
        return trained.module, card, dataset
    if model.endswith(".onnx"):
        return _converted_onnx(model, data, device, score)
    if not model.endswith((".pt", ".pth")) and not Path(model).exists():
        raise UserError(f"unknown model {model!r}",
                        f"give a zoo reference ({', '.join(REFERENCES)}), the path of a .pt file or of an .onnx file")
    module, card = loaded or load_model(model, trusted)
    module = on_device(module, device)
    if data:
        dataset = data_from_argument(data)
    else:
        spec = card.get("data_spec")
        if not spec:
            raise UserError(f"{model} does not say which data it was trained on", "pass --data")
        dataset = load_data(DATA_SOURCES[spec["name"]].model_validate(spec))
    dataset = fitted_layout(dataset, onnx_takes(card["source_onnx"]) if Path(card.get("source_onnx") or "").is_file()
                            else module_takes(module, device))
    if dataset.task == UNLABELLED:
        return module, card, _agreement(dataset, _source_reference(card, module, trusted), Path(model), score)
    dataset = with_model_classes(module, dataset, device)
    check_module_fits(module, dataset, Path(model), device)
    return module, card, dataset


def _source_reference(card: dict[str, Any], module: nn.Module, trusted: bool) -> Reference:
    """The source model: the ONNX file a converted model came from, the model file a model was made from (its card's
    source_model), else `module` itself."""
    if card.get("source_onnx"):
        source = Path(card["source_onnx"])
        if not source.is_file():
            raise UserError(f"the ONNX file this model came from ({source}) is gone, and the data has no labels",
                            "put the file back: without labels, scores are agreement with it")
        return onnx_reference(source)
    if card.get("source_model") and Path(card["source_model"]).is_file():
        return module_reference(load_model(card["source_model"], trusted)[0])
    return module_reference(module)


def _agreement(dataset: Dataset, reference: Reference, source: Path, score: str | None) -> Dataset:
    """`dataset` (unlabelled) labelled by `reference`; a model that refuses the samples is a DataError naming them."""
    try:
        return source_labelled(dataset, reference, score)
    except UserError:
        raise
    except Exception as exc:  # the model's own refusal of the samples
        raise DataError(f"model {source} does not take the data's samples of shape {list(dataset.input_shape)}: "
                        f"{first_line(exc) or type(exc).__name__}",
                        "give data of the shape the model was built for") from None


def _converted_onnx(model: str, data: str | None, device: torch.device, score: str | None = None
                    ) -> tuple[nn.Module, dict[str, Any], Dataset]:
    """An ONNX file as a torch module (converted_onnx) checked on the data's test samples; its card names the source
    file, so export can compare with it, and the data's task and classes (labelled by the file itself when the
    data has none)."""
    if not data:
        raise UserError(f"{model} is an ONNX file, which does not say what data it takes",
                        "pass --data: a .npz (x in the model's input layout; y labels if there are any) or an image "
                        "folder")
    dataset = fitted_layout(data_from_argument(data), onnx_takes(model))
    module, card = converted_onnx(model, dataset.test.x[:4])
    if dataset.task == UNLABELLED:
        dataset = _agreement(dataset, _source_reference(card, module, False), Path(model), score)
    dataset = with_model_classes(module, dataset)
    return on_device(module, device), {**card, "task": dataset.task, "class_names": list(dataset.class_names)}, dataset


def converted_onnx(model: str, sample: torch.Tensor) -> tuple[nn.Module, dict[str, Any]]:
    """The ONNX file `model` as a torch module checked against ONNX Runtime on `sample` (a batch of its input), and
    its card: the source file (export compares with it) and the input shape."""
    from edgewise.onnxin.convert import onnx_to_torch

    return onnx_to_torch(model, sample.numpy()), {"source_onnx": str(Path(model).resolve()),
                                                  "input_shape": list(sample.shape[1:])}


@dataclass(frozen=True)
class Outcome:
    """What a command cost, for its closing line: the score before and after on the test split (named by
    `score_name`: a metric, or agreement with the source model when the data has no labels) and the file written."""

    score_name: str
    before: float | None
    after: float | None
    path: Path
    bytes: int
    notes: tuple[str, ...] = ()
    bytes_are: str = ""  # what the bytes count, where not the file as written


def score_name(dataset: Dataset) -> str:
    """What a data set's scores mean: its metric on the test split, or agreement with the source model."""
    if dataset.reference is not None:
        return f"{dataset.reference}, {len(dataset.test)} test samples"
    metric = {"classification": "accuracy", "segmentation": "mIoU"}.get(dataset.task, dataset.task)
    return f"{metric}, {len(dataset.test)} test samples"


def _test_score(module: nn.Module, dataset: Dataset) -> float:

    return float(evaluate(module, dataset.test, dataset.task)["score"])


def _with_source(card: dict[str, Any], model: str) -> dict[str, Any]:
    """`card` naming the model its scores compare with when data has no labels: the source it names already, else
    the model file `model` (an ONNX file is named as source_onnx by its conversion)."""
    if card.get("source_onnx") or card.get("source_model") or model in REFERENCES:
        return card
    return {**card, "source_model": str(Path(model).resolve())}


def prune_file(model: str, out: str | Path, config: PruneConfig, data: str | None = None,
               classes: list[str] | None = None, device: str = "auto", trusted: bool = False,
               score: str | None = None, latency: bool = False) -> tuple[compress.PruneResult, Outcome]:
    """Prune `model` (zoo name or file) as `config` says, scoring on `device` (auto, cpu, cuda, cuda:N), and write
    the pruned model and its report JSON to `out`; returns the result and what it cost. `score` names how data
    without labels is scored (edgewise.zoo.agreement.SCORES; default: as the source's outputs say). With `latency`,
    both models are exported and timed in ONNX Runtime on this CPU at batch 1, and the report says so."""
    distinct_output(out, model, data)
    distinct_output(Path(out).with_suffix(".prune.json"), model, data)
    _reads_classes(config, classes)
    module, card, dataset = resolve_model(model, data, resolve_device(device), trusted, score=score)
    class_ids = None
    if classes:
        unknown = [c for c in classes if c not in dataset.class_names]
        if unknown:
            raise UserError(f"unknown classes {unknown}", f"use some of {', '.join(dataset.class_names)}")
        class_ids = tuple(dataset.class_names.index(c) for c in classes)

    result = prune_model(module, dataset, config, class_ids)
    out = Path(out)
    save_model(result.model, out, {**_with_source(card, model), "stage": result.label})
    timed, notes = latency_before_after(module, result.model, dataset.val.x[:1], model) if latency else ({}, ())
    write_json(out.with_suffix(".prune.json"), {**result.summary(), **timed})
    if class_ids is not None and dataset.task in ("classification", "segmentation"):  # an expert: on its classes

        named = f"{'IoU' if dataset.task == 'segmentation' else 'accuracy'}[{','.join(classes)}]"
        return result, Outcome(f"{named}, {len(dataset.test)} test samples",
                               class_score(module, dataset.test, dataset, class_ids),
                               class_score(result.model, dataset.test, dataset, class_ids), out, out.stat().st_size,
                               notes)
    return result, Outcome(score_name(dataset), _test_score(module, dataset), _test_score(result.model, dataset), out,
                           out.stat().st_size, notes)


def latency_before_after(module: nn.Module, pruned: nn.Module, example: torch.Tensor, source: str | Path | None = None
                         ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Both models' latency as shipped (ONNX Runtime on this CPU, at `example`'s batch; bench.latency.module_latency)
    and, for a model given as an ONNX file, that file's own (the kit's export of the unpruned model can differ from
    it): the records under "latency" for the report JSON, and the line that says what was measured."""
    example = example.to(device_of(module))
    records = {"before": module_latency(module, example), "after": module_latency(pruned, example)}
    before, after = records["before"], records["after"]
    line = (f"latency (measured: ONNX Runtime on this CPU, batch {before['batch']}, median of {before['iterations']:,} "
            f"and {after['iterations']:,} runs): {before['median_ms']:.3g} ms -> {after['median_ms']:.3g} ms "
            f"({after['median_ms'] / before['median_ms'] - 1:+.0%})")
    if source is not None and str(source).endswith(".onnx"):
        try:
            records["source"] = file_latency(source, example)
            line += f"; the source file itself {records['source']['median_ms']:.3g} ms"
        except UserError as exc:  # a file of several inputs or a fixed batch: its own figure is left out
            line += f"; the source file not timed ({exc.problem})"
    unstable = [reason for record in records.values() for reason in record["unstable"]]
    if unstable:
        line += f"; unstable: {unstable[0]}"
    return {"latency": records}, (line,)


def _reads_classes(config: PruneConfig, classes: list[str] | None) -> None:
    """Refuse classes for a criterion they cannot change (l1, random): the cut would be the plain one, unasked."""
    if classes and not compress.get_criterion(config.criterion, **config.options).class_specific:
        raise UserError(f"criterion {config.criterion} reads no samples, so --class {' '.join(classes)} would change "
                        "nothing", "score a class-specific expert with a criterion that reads the samples (lrp, "
                        "gradient, taylor, hrank, apoz, activation), or drop --class")


def detection_images(path: str | Path) -> torch.Tensor:
    """Reference images for a detector: the `x` array (images, channels, height, width) of a .npz, labels unneeded."""
    file = Path(path)
    if file.suffix != ".npz":
        raise UserError(f"detection images {file} are not a .npz file", "save the images as np.savez(path, x=images)")
    arrays = read_npz(file)  # missing, damaged, empty or non-finite arrays are refused there
    if "x" not in arrays:
        raise UserError(f"{file} has no array 'x'", "save the images as np.savez(path, x=images)")
    x = arrays["x"]
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"the images in {file} are {x.dtype} of shape {x.shape}",
                        "give finite float images of shape (images, channels, height, width)")
    return torch.from_numpy(x.astype(np.float32))


def _detection_classes(module: nn.Module, classes: list[str]) -> tuple[int, ...]:
    names = getattr(module, "names", None) or {}
    ids = {str(name): int(i) for i, name in (names.items() if isinstance(names, dict) else enumerate(names))}
    chosen = []
    for c in classes:
        if c.isdigit() or c in ids:
            chosen.append(int(c) if c.isdigit() else ids[c])
        else:
            known = ", ".join(list(ids)[:10]) + (f" ... ({len(ids)} classes)" if len(ids) > 10 else "")
            raise UserError(f"unknown detection class {c!r}", f"give a class id or a name the model knows: {known}")
    return tuple(chosen)


def prune_detector_file(model: str, out: str | Path, config: PruneConfig, images: str | Path,
                        classes: list[str] | None = None, detections: int = 10, device: str = "auto",
                        trusted: bool = False, latency: bool = False) -> tuple[compress.PruneResult, Outcome]:
    """Prune a detector saved as a file (an ultralytics YOLO model, compress.DetectorHeads of a torchvision
    detector, or an ONNX file whose output is class scores (images, anchors, classes) or a map (images, classes,
    height, width)), scored by the relevance of its own `detections` strongest detections per reference image,
    restricted to `classes` (ids or the model's class names), on `device`; write the pruned model and its report
    JSON to `out` (with `latency`, as prune_file)."""
    distinct_output(out, model, images)
    _reads_classes(config, classes)
    x = detection_images(images)
    module, card = converted_onnx(model, x[:4]) if model.endswith(".onnx") else load_model(model, trusted)
    module = on_device(module, resolve_device(device))
    ref = compress.ReferenceSamples.for_detection(x, _detection_classes(module, classes) if classes else None,
                                                  detections, output=config.output)

    result = prune_as_configured(module, ref, config, tuner(module, ref.x, None, ref.task, config))
    out = Path(out)
    save_model(result.model, out, {**card, "task": "detection", "stage": result.label})
    timed, notes = latency_before_after(module, result.model, ref.x[:1], model) if latency else ({}, ())
    write_json(out.with_suffix(".prune.json"), {**result.summary(), **timed})
    return result, Outcome("no labels: detections are not scored here", None, None, out, out.stat().st_size, notes)


def quantize_file(model: str, out: str | Path, config: QuantizeConfig,
                  data: str | None = None, device: str = "auto", trusted: bool = False, score: str | None = None
                  ) -> tuple[compress.QuantizedModel, Outcome]:
    """Quantize `model` (zoo name or file), relevances and QAT on `device` (auto, cpu, cuda, cuda:N): write the
    quantized model to `out` and its records beside it (.npz); returns the result and what it cost (the bytes of the
    weights packed at their bit width). `score` as in `prune_file`."""
    from edgewise.stages.quantize import quantize_model

    beside = [Path(out).with_suffix(".npz"), Path(out).with_suffix(".quantize.json")]
    if Path(out) in beside:
        raise UserError(f"-o {out}: the quantized model and the records written beside it (.npz, .quantize.json) "
                        "would be one file", f"name the model file {Path(out).with_suffix('.pt')}")
    for written in (Path(out), *beside):
        distinct_output(written, model, data)
    module, card, dataset = resolve_model(model, data, resolve_device(device), trusted, score=score)
    before = _test_score(module, dataset)  # before: QAT trains the module it is given
    # torch's exporter folds a BatchNorm into the layer before it, and so into 4-bit weights, off their grid: fold
    # first. A converted ONNX graph is written back with its BatchNorm nodes as they were, so it keeps them.
    folded: list[str] = []
    if not callable(getattr(module, "to_onnx_proto", None)):
        module, folded = compress.fold_batchnorm(module, dataset.val.x[:8])
    result = quantize_model(module, dataset, config)
    out = Path(out)
    # the records first and the model last: a run killed between the two leaves no new model file that looks
    # finished without its records (an older model beside the new records is refused by export's weight check)
    save_records(out.with_suffix(".npz"), result.records, compress.floats_of(result.model, result.records))
    save_model(result.model, out, {**_with_source(card, model), "stage": f"{config.method} {config.bits}-bit"})
    write_json(out.with_suffix(".quantize.json"), result.summary())

    notes = (f"batch-norm folded into the layer before it first: {', '.join(folded)}",) if folded else ()
    if "lambda_search" in result.history:
        notes += (lambda_note(result.history),)
    return result, Outcome(score_name(dataset), before, _test_score(result.model, dataset), out.with_suffix(".npz"),
                           packed_bytes(result.model, result.records), notes,
                           "with the weights packed at their bit width")


def lambda_note(history: dict[str, Any]) -> str:
    """What `--lambda auto` chose and why: each lambda tried with its output error, entropy and sparsity."""
    tried = "; ".join(f"{t['lambda']:g}: error {t['output_error']:.4f}, {t['entropy_bits']:.2f} bit, "
                      f"{t['sparsity']:.0%} zeros" for t in history["lambda_search"])
    return (f"lambda auto chose {history['lam']:g}: the largest whose outputs on the reference samples stay within "
            f"10% of lambda 0's error (tried {tried})")


def encode_file(records: str | Path, out: str | Path) -> compress.Bitstream:
    """Code a records file (.npz from quantize) with NNCodec into `out` (.nnc); the round trip is verified."""
    distinct_output(out, records)
    layers, floats = load_records(records)
    stream = compress.encode(layers, floats)
    write_bytes(out, stream.data)
    return stream


def decode_file(bitstream: str | Path, out: str | Path) -> tuple[dict, dict]:
    """Decode a `.nnc` file back into a records file (.npz); damage is reported, never decoded."""
    path = Path(bitstream)
    if not path.is_file():
        raise UserError(f"bitstream {path} does not exist", "give the path of a .nnc file")
    distinct_output(out, path)
    layers, floats = compress.decode(path.read_bytes())
    save_records(out, layers, floats)
    return layers, floats


def export_file(model: str, out: str | Path, records: str | Path | None = None, data: str | None = None,
                tensorrt: str | None = None, w4a8: W4A8Config | None = None, trusted: bool = False,
                score: str | None = None, plain: str = "auto") -> dict[str, Any]:
    """Export `model` (zoo name or file) to ONNX at `out` (4-bit when `records` are given), verify it, and score both
    the torch model and the file as it ships in ONNX Runtime on the test split (by agreement with the source model
    when the data has no labels, as `score` names or the source's outputs say).

    With `w4a8` the file quantizes the activations to 8 bits too (ranges calibrated on the data's
    training split; it needs `records`). With `tensorrt` (a precision), an engine is built beside
    it when TensorRT and a GPU exist; otherwise a UserError says why before anything is written.
    The file is written beside `out` and replaces it only once it is verified: a failed export
    leaves whatever was at `out` as it was. A 4-bit file is then timed in the kit's session and in
    a plain ONNX Runtime one, and its plain variant written beside it as `plain` says
    (export.plain_runtime: auto, always, never).
    """
    if w4a8 is not None and not records:
        raise UserError("--w4a8 needs the quantized records", "pass --records model-q.npz from `edgewise quantize`")
    distinct_output(out, model, records, data)
    layers = load_records(records)[0] if records else None
    if w4a8 is not None:

        check_w4a8_records(layers)  # before the model's conversion and the calibration it would waste
    loaded = load_model(model, trusted) if str(model).endswith((".pt", ".pth")) and Path(model).is_file() else None
    if loaded is not None:
        distinct_output(out, loaded[1].get("source_onnx"), loaded[1].get("source_model"))
    if loaded is not None and loaded[1].get("task") == "detection":  # no labels: checked by its outputs, not scored
        if w4a8 is not None or tensorrt:
            raise UserError("a detector's export here is the plain or 4-bit ONNX file", "export without --w4a8 and "
                            "--tensorrt; the bundle's run.py builds the board's engine")
        return _export_detector(*loaded, model, out, records, data, plain)
    module, card, dataset = resolve_model(model, data, trusted=trusted, loaded=loaded, score=score)
    distinct_output(out, card.get("source_onnx"))
    command = export.trtexec_command(Path(out).name, Path(out).with_suffix(".engine").name, "x",
                                     dataset.input_shape, tensorrt) if tensorrt else None
    if command is not None:  # before any file is written
        available, reason = export.tensorrt_status()
        if not available:
            raise UserError(f"TensorRT is unavailable here: {reason}",
                            f"export without --tensorrt and build on the board: {' '.join(command)}")
    probe = dataset.test.x[:8]
    with atomic_path(out) as staged:
        onnx_file, check = export_verified(module, probe[:2], probe, staged, dataset, layers, w4a8)
        result = {**check, "path": str(out),
                  **({"float_nodes": onnx_file.float_nodes, "float_nodes_line": float_nodes_line(onnx_file)}
                     if w4a8 is not None else {}),
                  "torch_score": evaluate(module, dataset.test, dataset.task)["score"],
                  "score_name": score_name(dataset)}
        if card.get("source_onnx") and dataset.reference is None:
            result.update(_against_source(Path(card["source_onnx"]), staged, dataset))
    result.update(_runtimes(out, probe, plain))
    if command is not None:
        result["trtexec"] = command
        result["engine"] = export.to_tensorrt(Path(out), Path(out).with_suffix(".engine"), dataset.input_shape,
                                              tensorrt)
    return result


def _runtimes(path: str | Path, probe: torch.Tensor, plain: str) -> dict[str, Any]:
    """The written file's speeds in the kit's session and a plain one, its plain variant as `plain` says
    (export.plain_runtime.runtime_speeds), and the sentence that says so; nothing for a file both load alike."""
    speeds = runtime_speeds(path, probe.numpy(), plain)
    return {} if speeds is None else {"runtime": speeds.to_json(), "runtime_line": speeds.line(Path(path).name)}


def _export_detector(module: nn.Module, card: dict[str, Any], model: str, out: str | Path,
                     records: str | Path | None, images: str | None, plain: str = "auto") -> dict[str, Any]:
    """Export a detector loaded from the file `model` (no labels: its outputs are what the file is checked by) on
    the images of `images` (.npz x); a model converted from ONNX is compared with the file it came from, output for
    output. The file replaces `out` only once it is verified."""
    if not images:
        raise UserError(f"{model} is a detector: its export is checked on images", "pass --data images.npz (x)")
    layers = load_records(records)[0] if records else None
    probe = detection_images(images)[:8]
    with atomic_path(out) as staged:
        onnx_file = export.to_onnx(module, probe[:2], staged, layers)
        result = {**export.verify(staged, module, probe, quantized=bool(layers)), "path": str(out),
                  "quantized_layers": onnx_file.quantized_layers}
        source = Path(card["source_onnx"]) if card.get("source_onnx") else None
        if source is not None and source.is_file():
            before = session_runner(export.open_session(source, fast=False))(probe.numpy())
            after = session_runner(export.open_session(staged))(probe.numpy())
            result.update(source_onnx=str(source), source_rel_diff=relative_difference(after, before)
                          if after.shape == before.shape else float("inf"))
    result.update(_runtimes(out, probe, plain))
    return result


def _against_source(source: Path, exported: Path, dataset: Dataset) -> dict[str, Any]:
    """The ONNX file a converted model came from against its export: both scores on the test split, and the share of
    test samples whose prediction (argmax over the output's axis 1) is the same."""
    if not source.is_file():
        raise UserError(f"the ONNX file this model came from ({source}) is gone",
                        "put it back to compare with it, or export without it: the export itself is written")
    x = dataset.test.x.numpy()
    before = session_runner(export.open_session(source, fast=False))(x)
    after = session_runner(export.open_session(exported))(x)
    agreement = float((before.argmax(1) == after.argmax(1)).mean())
    return {"source_onnx": str(source), "source_score": shipped_score(source, dataset), "source_agreement": agreement}


def _check_bitstream(path: Path, layers: dict | None, module: nn.Module) -> None:
    """A bitstream to ship must decode and code this model: the records' levels when records are given, else the
    model's own weights (a quantized model holds its grid values), never another model's."""
    if not path.is_file():
        raise UserError(f"bitstream {path} does not exist", "give the .nnc that `edgewise encode` wrote")
    decoded, _ = compress.decode(path.read_bytes())
    if layers is not None:
        other = set(decoded) != set(layers) or any(not np.array_equal(decoded[name].levels, record.levels)
                                                   for name, record in layers.items())
    else:
        state = module.state_dict()
        other = any(r.weight_key not in state or tuple(state[r.weight_key].shape) != r.levels.shape
                    or not np.allclose(state[r.weight_key].detach().cpu().numpy(), r.dequantize(), rtol=1e-5,
                                       atol=1e-6) for r in decoded.values())
    if other:
        raise UserError(f"bitstream {path} codes other weights than the {'records given' if layers else 'model'}",
                        "encode this model's records (edgewise encode RECORDS -o model.nnc) and ship that")


def deploy_file(model: str, out: str | Path, records: str | Path | None = None, bitstream: str | Path | None = None,
                data: str | None = None, tar: bool = False, to: str | None = None,
                precision: str = "fp16", trusted: bool = False, sign_key: str | Path | None = None) -> Path:
    """Export `model`, bundle it with its probe, hashes and board runner at `out`, verify it, optionally scp it."""
    config = DeployConfig(tar=tar, to=to, precision=precision, sign_key=sign_key)
    distinct_output(out, model, records, bitstream, data, sign_key)
    check_target(out, tar)  # before the export's work, not after it
    module, _, dataset = resolve_model(model, data, trusted=trusted)
    layers = load_records(records)[0] if records else None
    if bitstream is not None:
        _check_bitstream(Path(bitstream), layers, module)
    path, _ = deploy_module(module, Path(out), Path(out).name, dataset, config, layers,
                            None if bitstream is None else Path(bitstream))
    return path


def emulate_file(model: str | Path, target: str, data: str = "digits", activation_bits: int = 8,
                 acc_bits: int = 32, calibrator: str = "max") -> tuple[Any, dict[str, Any], float]:
    """Run a 4-bit MLP (records .npz or 4-bit .onnx) through the integer kernel and cost it on `target`.

    Returns the IntegerMLP, its emulated costs and its test accuracy on `data` (activation ranges
    calibrated on the training split by `calibrator`: max, percentile or entropy).
    """
    dataset = data_from_argument(data)
    path = Path(model)
    if not path.is_file():
        raise UserError(f"{path} does not exist", "give quantized records (.npz) or a 4-bit ONNX MLP (.onnx)")
    records = records_from_onnx(path) if path.suffix == ".onnx" else list(load_records(path)[0].values())
    mlp = IntegerMLP.from_records(records, dataset.train.x.numpy(), activation_bits, acc_bits, calibrator)
    accuracy = float((mlp.run(dataset.test.x.numpy()).argmax(1) == dataset.test.y.numpy()).mean())
    return mlp, mlp.costs(target), accuracy
