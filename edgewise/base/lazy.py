"""Lazy package attributes (PEP 562): a package names its public objects without importing their modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, where: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`: attribute name -> the module (relative to the package) defining it.

    An attribute is imported on first access and cached in the package's namespace, so
    `import package` stays cheap and `package.name` costs what its own module costs.
    """
    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(where[name], package)
        # a subpackage named like the attribute is the attribute itself (edgewise.bench is callable)
        value = module if module.__name__ == f"{package}.{name}" else getattr(module, name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(where))

    return __getattr__, __dir__
