"""Reading an ONNX file a user gives: the file itself, its external data (present, inside the model's folder) and
its opsets (ones the installed onnx knows), each fault a one-line UserError with the fix, never a library's
traceback."""

from __future__ import annotations

import os
import re
from pathlib import Path

import onnx

from edgewise.board.errors import UserError, first_line


def _check_external_data(model: onnx.ModelProto, file: Path) -> None:
    """Every tensor stored outside the file must name a file that exists inside the model's folder: onnx refuses
    others with a checker message that does not say what to do."""
    folder = file.resolve().parent
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not target.is_relative_to(folder):
            raise UserError(f"{file}: tensor {tensor.name} keeps its data at {location!r}, outside the model's "
                            "folder; the kit does not read files outside it",
                            "keep the external data file beside the .onnx (onnx.save(..., location='NAME.data'))")
        if not target.is_file():
            raise UserError(f"{file}: tensor {tensor.name} keeps its data in {location!r}, which is missing from "
                            f"{folder}", "copy the external data file beside the .onnx, as it was exported")


def check_opsets(model: onnx.ModelProto, file: str | os.PathLike[str]) -> None:
    """Refuse an opset of the standard domain newer than the installed onnx knows (ONNX Runtime refuses it too, with
    a paragraph about opsets under development)."""
    known = onnx.defs.onnx_opset_version()
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version > known:
            raise UserError(f"{file} declares opset {entry.version} of the standard ONNX ops; onnx "
                            f"{onnx.__version__} here knows opsets up to {known}",
                            f"export the model with opset {known} or lower (torch.onnx.export(..., opset_version=17))")


def read_onnx(path: str | os.PathLike[str], external_data: bool = True, checker: bool = False) -> onnx.ModelProto:
    """The ONNX model at `path` (with its external data unless `external_data` is False), checked: a missing or
    damaged file, external data that is missing or outside the model's folder, an unknown opset, or (with `checker`)
    a graph the onnx checker refuses is a UserError naming it. The checker is stricter than ONNX Runtime (a value
    info without a shape fails it), so readers that only run or count a graph leave it off."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"ONNX file {file} does not exist", "give the path of an .onnx file")
    try:
        model = onnx.load(str(file), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and others for damaged files
        raise UserError(f"cannot read ONNX file {file} (damaged, or not ONNX): {first_line(exc)}",
                        "export the model again") from None
    _check_external_data(model, file)
    check_opsets(model, file)
    try:
        if checker:  # by path: external data and files over protobuf's 2 GB are checked too
            onnx.checker.check_model(str(file))
        if external_data:
            onnx.load_external_data_for_model(model, str(file.resolve().parent))
    except Exception as exc:  # onnx's ValidationError, OSError for unreadable external data
        raise UserError(f"cannot read ONNX file {file}: {first_line(exc)}",
                        "export the model again; its weights must be in the file or beside it") from None
    return model


def ort_message(exc: BaseException, limit: int = 240) -> str:
    """The part of an ONNX Runtime exception a person reads: its first line without the "[ONNXRuntimeError] : 1 :
    FAIL :" prefix and the C++ source location, cut at `limit` characters."""
    text = first_line(exc)
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"^(Load model from \S+ failed:)?\s*/\S+:\d+ [^)]*\)\s*", "", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_fix(exc: BaseException) -> str:
    """The fix for a model ONNX Runtime refuses to load, from what it said: an op it does not have, or anything else
    (a graph it cannot type)."""
    text = str(exc)
    op = re.search(r"(\S+?)(?:\(-?\d+\))? is not a registered function/op", text)
    if op:
        return (f"{op.group(1)} is not an ONNX Runtime op: register its custom-op library "
                "(SessionOptions.register_custom_ops_library) or export the model without it")
    return "check the file with onnx.checker, or export it again with a released opset (17 to 21)"
