"""The user's own model code, named once (`--code FILE_OR_PACKAGE`): imported, and its classes allowed when a model
file names them, also as `__main__.Class` (what `torch.save(model)` writes from a training script).

Naming the code is the consent: a file that names classes of that code unpickles with torch's weights_only loader
and those classes allowed, and nothing else it might name runs. Like torch's own `add_safe_globals`, what is
allowed holds for the process. A model file the kit writes from such a model carries the code's name, so later
commands on it need the flag no more.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from edgewise.board.errors import UserError, first_line

CODE_ENTRY = "edgewise-code"
"""The name of the archive entry a model file the kit writes holds its code's name in (see modelio.save_model)."""

_allowed: dict[str, ModuleType] = {}  # the code's name as given (a file's absolute path, or a module) -> the module


def _from_file(path: Path) -> ModuleType:
    name = f"{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"--code {path} is not a Python file", "name a .py file or an importable package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # so that the file's own imports of its neighbours resolve
    spec.loader.exec_module(module)
    return module


def allow_code(spec: str | Path) -> ModuleType:
    """Import the code `spec` names (a .py file, a package folder, or an importable module name) and allow its
    classes in model files for this process; an import that fails is a UserError with its first line."""
    given = Path(spec)
    key = str(given.resolve()) if given.exists() else str(spec)
    if key in _allowed:
        return _allowed[key]
    try:
        if given.is_file():
            module = _from_file(given.resolve())
        elif given.is_dir() and (given / "__init__.py").is_file():
            sys.path.insert(0, str(given.resolve().parent))
            module = importlib.import_module(given.resolve().name)
        elif str(spec).endswith(".py"):
            raise UserError(f"--code {spec}: no such file", "give the path of the .py file that defines the model")
        else:
            module = importlib.import_module(str(spec))
    except UserError:
        raise
    except Exception as exc:  # the user's code raises what it raises on import
        raise UserError(f"--code {spec} cannot be imported: {type(exc).__name__}: {first_line(exc)}",
                        "name the .py file or package that defines the model's classes, with what it imports "
                        "installed") from None
    _allowed[key] = module
    return module


def code_object(name: str) -> object | None:
    """The object a model file names as `name` (module.qualname) when it lies in allowed code: `__main__.X` is X of
    an allowed file, `pkg.mod.X` is X of an allowed package or module pkg; None otherwise."""
    module_name, _, qualname = name.rpartition(".")
    for key, module in _allowed.items():
        candidates = []
        if module_name == "__main__" or module_name == module.__name__:
            candidates.append(module)
        root = module.__name__.split(".")[0]
        if not Path(key).is_file() and (module_name == root or module_name.startswith(root + ".")):
            try:
                candidates.append(importlib.import_module(module_name))
            except ImportError:
                continue
        for holder in candidates:
            obj: object = holder
            for part in qualname.split("."):
                obj = getattr(obj, part, None)
            if obj is not None:
                return obj
    return None


def allow_codes(specs: str) -> list[ModuleType]:
    """allow_code of each of the comma-separated `specs` (--code model.py,omegaconf: a model's own code and a package
    whose objects it holds)."""
    return [allow_code(spec.strip()) for spec in str(specs).split(",") if spec.strip()]


def allowed_specs() -> list[str]:
    """The code allowed in this process, as named (a file's absolute path, or a module)."""
    return list(_allowed)


def code_of(modules: set[str]) -> list[str]:
    """The allowed code names (as given) that hold some of the `modules` (dotted names): what a model file naming
    objects of those modules needs."""
    return [key for key, module in _allowed.items()
            if any(m == module.__name__ or m.startswith(module.__name__.split(".")[0] + ".") for m in modules)]
