"""Saving and loading whole models with their card, so pruned models reload with their smaller shapes."""

from __future__ import annotations

import importlib
import io
import os
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgewise.base.atomic import write_bytes
from edgewise.base.device import on_device
from edgewise.base.digest import tensors_digest
from edgewise.board.errors import UserError, first_line
from edgewise.compress.layers import converted_from_onnx
from edgewise.core.usercode import CODE_ENTRY, allow_code, allowed_specs, code_object, code_of

FORMAT = "edgewise-model/1"


def save_model(model: nn.Module, path: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Write `model` (the whole module, so its shapes travel with it) and its `card` atomically to `path`.

    The card is plain JSON-able metadata: architecture, input shape, task, class names, how it
    was made; the file also holds the sha256 of the weights, which load_model checks (torch does
    not check its archive's CRCs). A model on a GPU is written from a CPU copy, so the file loads
    on machines without one.
    """
    cpu = on_device(model, torch.device("cpu"))
    if converted_from_onnx(cpu):
        from edgewise.onnxin.portable import portable

        cpu = portable(cpu)
    # through a file object: torch names the archive's folder after a file name, and the temporary one is random
    payload = {"format": FORMAT, "card": card, "module": cpu, "weights_sha256": weights_digest(cpu)}
    archive = _canonical(payload)
    # the modules the file names: its layers' classes, and what they hold (a training script's config objects)
    named = {name.rpartition(".")[0] for name in torch.serialization.get_unsafe_globals_in_checkpoint(
        io.BytesIO(archive))}
    return write_bytes(path, _with_code(archive, code_of(named)))


def _with_code(archive: bytes, specs: list[str]) -> bytes:
    """`archive` (torch.save's zip) with the names of the user's code its classes come from, as an entry torch.load
    passes over and `load_model` reads first."""
    if not specs:
        return archive
    buffer = io.BytesIO(archive)
    with zipfile.ZipFile(buffer, "a") as zipped:
        folder = zipped.namelist()[0].split("/", 1)[0]
        zipped.writestr(f"{folder}/{CODE_ENTRY}", "\n".join(specs))
    return buffer.getvalue()


class _ByValue(pickle._Pickler):
    """A pickler that writes equal strings as one object: pickle's bytes otherwise depend on which equal strings are
    one object (a freshly built module shares its names, one read from a file does not), so the same model would
    write other bytes after a trip through the model cache, and every later stage that reads it would run again."""

    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if type(obj) is str:
            obj = sys.intern(obj)
        super().save(obj, save_persistent_id)


class _ByValuePickle:
    """The pickle module torch.save is given: the standard one with `_ByValue` as its Pickler."""

    __name__ = "pickle"
    Pickler = _ByValue
    dump = staticmethod(pickle.dump)


def _canonical(payload: dict[str, Any]) -> bytes:
    """`payload` as torch.save writes it, strings by value (see `_ByValue`): the same content, the same bytes."""
    buffer = io.BytesIO()  # torch names the archive's folder after a file's name; a buffer's is always "archive"
    torch.save(payload, buffer, pickle_module=_ByValuePickle)
    return buffer.getvalue()


def weights_digest(model: nn.Module) -> str:
    """The digest (edgewise.base.digest) of the model's state: every parameter and buffer."""

    def raw(tensor: torch.Tensor) -> bytes:  # bytes as stored, whatever the dtype (bfloat16 has no numpy type)
        # a fresh copy: a one-element tensor with a stride other than 1 counts as contiguous but cannot be viewed
        flat = tensor.detach().cpu().reshape(-1).clone(memory_format=torch.contiguous_format)
        return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""

    return tensors_digest((name, str(value.dtype), tuple(value.shape), raw(value))
                          for name, value in model.state_dict().items())


# packages whose nn.Module classes a model file may name and still load without consent: unpickling with
# weights_only builds those classes and sets their attributes, and runs no code the file brings
TRUSTED_PACKAGES = ("torch", "torchvision", "timm", "ultralytics", "onnx2torch", "edgewise")
# calls only what the file may name anyway (torchvision's norm_layer partials), and the plain types a training
# script's settings name as objects (omegaconf's nodes record their element type: builtins.int, typing.Any)
SAFE_GLOBALS = {"functools.partial", "builtins.list", "builtins.dict", "builtins.tuple", "builtins.set",
                "builtins.int", "builtins.float", "builtins.str", "builtins.bool", "builtins.bytes",
                "collections.OrderedDict", "collections.defaultdict", "typing.Any"}
# functions a model may hold (a detector's matcher holds box_iou): tensor arithmetic, harmless whatever a file passes
SAFE_FUNCTION_MODULES = ("torchvision.ops.boxes",)


def trust_fix(packages: list[str]) -> str:
    """How to load a model file that names code of `packages` (top-level module names) outside the trusted classes
    and the code already allowed: where code was named (--code), the same with these packages added (never the
    standard library's: a file naming os.system is crafted, not a model)."""
    given = allowed_specs()
    code = (f"--code {','.join([*given, *(p for p in packages if p not in sys.stdlib_module_names)])}" if given
            else "--code my_model.py (or the package; recipe: code:)")
    return (f"name the code that defines its classes: {code}, which allows that code alone; or, if you trust whoever "
            "made the file, --trust-model-file (recipe: trusted: true); safer formats load without either: a "
            "state_dict with its architecture (recipe: arch + weights), or ONNX (onnx:)")


def _trusted_global(name: str) -> object | None:
    """The object a checkpoint names as `name` (module.qualname) when it is a class of a trusted package (an nn.Module,
    an enum as timm's layer formats, a helper as torchvision's BoxCoder), or a safe global; None otherwise. Only
    modules of trusted packages are imported to find out."""
    if name in SAFE_GLOBALS:
        module, _, attr = name.rpartition(".")
        return getattr(importlib.import_module(module), attr)
    if name.split(".", 1)[0] not in TRUSTED_PACKAGES:
        return None
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable module, then the qualified name inside it
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        # a class (unpickling builds it and sets its state: torchvision's BoxCoder and its detectors' other helpers
        # are plain classes), never a function outside the safe ones (a file may call what it names)
        return obj if isinstance(obj, type) or (callable(obj) and ".".join(parts[:cut]) in SAFE_FUNCTION_MODULES) \
            else None
    return None


def _allow_stamped_code(file: Path) -> None:
    """Allow the code a model file the kit wrote names (its CODE_ENTRY) again; other files name none."""
    try:
        with zipfile.ZipFile(file) as archive:
            entry = next((n for n in archive.namelist() if n.rsplit("/", 1)[-1] == CODE_ENTRY), None)
            specs = archive.read(entry).decode().splitlines() if entry else []
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError):
        return  # torch.load says what is wrong with the file
    for spec in specs:
        if spec.endswith(".py") and not Path(spec).is_file():
            raise UserError(f"model file {file} was made from the code in {spec}, which is gone",
                            f"put {spec} back, or name where its classes are now with --code")
        allow_code(spec)


def _unpickle(file: Path, trusted: bool) -> object:
    """torch.load of `file`: with weights_only and the classes it names allowed when they are trusted packages' or
    code the user named (--code, or the code a file the kit wrote names), or, when it names other code and `trusted`
    says the user consents, as a full pickle."""
    _allow_stamped_code(file)
    needed = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    allowed = {name: _trusted_global(name) or code_object(name) for name in needed}
    refused = sorted((name for name, obj in allowed.items() if obj is None), key=lambda n: n.split(".")[0])
    if refused and trusted:
        return torch.load(file, map_location="cpu", weights_only=False)
    if refused:
        packages = sorted({name.split(".")[0] for name in refused})
        more = f" and {len(refused) - 1} more" if len(refused) > 1 else ""
        raise UserError(f"model file {file} names code outside the classes Edgewise trusts ({refused[0]}{more}): "
                        "unpickling it could run any code the file holds", trust_fix(packages))
    # a class of the user's code named otherwise in the file (__main__.Net) is allowed under the file's name for it
    with torch.serialization.safe_globals([obj if f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
                                           == name else (obj, name) for name, obj in allowed.items()]):
        return torch.load(file, map_location="cpu", weights_only=True)


def load_model(path: str | os.PathLike[str], trusted: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model saved by `save_model`, or a plain `torch.save(module)` file; return (module, card).

    Files are unpickled with torch's weights_only loader, allowing the nn.Module classes of torch,
    torchvision, timm, ultralytics, onnx2torch and Edgewise: such a file loads as it is. A file that names other
    code (a class of your own project) runs that code while it unpickles, so it loads only with
    `trusted` (the user's consent: --trust-model-file, or trusted: true in a recipe); otherwise a
    UserError names the class and the safer formats. Files Edgewise wrote into its own run directory
    and cache are loaded as trusted.
    """
    file = Path(path)
    if not file.is_file():
        raise UserError(f"model file {file} does not exist",
                        "give the path of a .pt file saved by Edgewise or torch.save")
    try:
        obj = _unpickle(file, trusted)
    except UserError:
        raise
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, AttributeError,
            ModuleNotFoundError, OSError, ValueError) as exc:
        first = first_line(exc)
        missing = isinstance(exc, AttributeError | ModuleNotFoundError) or "Can't get attribute" in first
        raise UserError(f"cannot load model file {file}: {first}",
                        "name the code that defines its classes with --code my_model.py (a class saved from a "
                        "training script is looked up as __main__.Class)" if missing else
                        "the file is damaged or truncated; save it again") from exc
    if isinstance(obj, dict) and isinstance(obj.get("module"), nn.Module) and converted_from_onnx(obj["module"]):
        from edgewise.onnxin.portable import restore

        restore(obj["module"])
    if isinstance(obj, nn.Module):
        return obj.eval(), {}
    if isinstance(obj, dict) and obj.get("format") == FORMAT and isinstance(obj.get("module"), nn.Module):
        expected = obj.get("weights_sha256")
        if expected is not None and weights_digest(obj["module"]) != expected:
            raise UserError(f"model file {file} is damaged: its weights do not match the checksum written with them",
                            "copy or write the file again")
        return obj["module"].eval(), dict(obj.get("card", {}))
    if isinstance(obj, dict):
        raise UserError(f"{file} holds a state dict or other dict, not a model",
                        "save the whole module (torch.save(model, path)) so its architecture comes along")
    raise UserError(f"{file} holds a {type(obj).__name__}, not a model", "save an nn.Module with torch.save")


def load_weights(module: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a state_dict file (tensors only: torch's weights_only loader, no code runs) into `module`, which must have
    exactly its keys and shapes; a mismatch is a UserError naming the first ones."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"weights file {file} does not exist", "give the path of a state_dict saved with torch.save")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        first = first_line(exc)
        raise UserError(f"cannot load weights file {file}: {first}",
                        "save the weights with torch.save(model.state_dict(), path)") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a training checkpoint
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{file} holds no state_dict (names to tensors)",
                        "save the weights with torch.save(model.state_dict(), path)")
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        what = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected else
                f"{wrong[0]} is {tuple(state[wrong[0]].shape)} in the file, {tuple(own[wrong[0]].shape)} in the "
                "architecture")
        raise UserError(f"the weights in {file} do not fit the architecture: {what}",
                        "give the architecture (arch, arch_args) and data (classes, input size) they were trained for")
    module.load_state_dict(state)
    return module.eval()
