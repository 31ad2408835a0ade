"""Named plug-ins of one kind (criteria, quantizers, emulators, architectures): built in, registered, or shipped.

A registry knows its entries' names without importing them: a built-in entry is `module:attribute`,
imported when it is first looked up, and another package's entry is an entry point of the
registry's group (`[project.entry-points."edgewise.quantizers"]` in its pyproject.toml), found
by name and loaded on use. So a recipe is checked against every name without importing torch,
and a plug-in is one call (`register`) or one entry point, with no edit to the kit.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from edgewise.board.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Plug-ins of one `kind` by name; `group` is the entry-point group other packages register theirs under.

    `product` ("module:Class") is what calling an entry must build (a Criterion, a Quantizer): an
    entry that is not callable, or that builds something else, is refused by name where it is used
    (`build`), not found later as an AttributeError deep inside the work.
    """

    def __init__(self, kind: str, group: str, builtin: dict[str, str | T] | None = None,
                 product: str | None = None) -> None:
        self.kind, self.group, self.product = kind, group, product
        self._builtin: dict[str, str | T] = dict(builtin or {})
        self._entries: dict[str, str | T] = dict(self._builtin)
        self._loaded: dict[str, T] = {}
        self._clashes: dict[str, list[str]] = {}
        self._discovered = False

    def register(self, name: str, plugin: T | None = None, *, replace: bool = False) -> Any:
        """Add `plugin` under `name` (or, without `plugin`, a decorator that adds what it decorates); a name taken
        already is refused unless `replace`, so a typo cannot shadow a built-in unnoticed."""
        if plugin is None:
            return lambda decorated: self.register(name, decorated, replace=replace)
        if not name or not isinstance(name, str):
            raise UserError(f"a {self.kind} needs a name, got {name!r}", "register it under a non-empty string")
        if name in self.names() and not replace:
            raise UserError(f"a {self.kind} named {name!r} is registered already",
                            "choose another name, or pass replace=True to put yours in its place")
        self._entries[name] = plugin
        self._loaded.pop(name, None)
        return plugin

    def unregister(self, name: str) -> None:
        """Remove the entry `name` (a test's or a session's own plug-in); unknown names are a UserError."""
        self.get(name)
        self._entries.pop(name, None)
        self._loaded.pop(name, None)

    def is_builtin(self, name: str) -> bool:
        """Whether `name` is the kit's own entry (not registered or replaced since)."""
        return name in self._builtin and self._entries.get(name) is self._builtin[name]

    def _discover(self) -> None:
        """Add the entry points of other installed packages (once; a name the kit has keeps the kit's entry, and a
        name two packages give is remembered as a clash, refused when used: neither may win unnoticed)."""
        if self._discovered:
            return
        self._discovered = True
        from importlib.metadata import entry_points

        for point in entry_points(group=self.group):
            taken = self._entries.get(point.name)
            if type(taken).__name__ == "EntryPoint" and taken.value != point.value:
                self._clashes.setdefault(point.name, [_origin(taken)]).append(_origin(point))
            self._entries.setdefault(point.name, point)

    def names(self) -> tuple[str, ...]:
        """Every name, built-in ones first, without importing any entry."""
        self._discover()
        return tuple(self._entries)

    def get(self, name: str) -> T:
        """The entry `name`, imported on first use; an unknown name is a UserError listing the known ones."""
        if name in self._loaded:
            return self._loaded[name]
        if name not in self.names():
            raise UserError(f"unknown {self.kind} {name!r}", f"use one of {', '.join(self.names())}")
        if name in self._clashes:
            raise UserError(f"{len(self._clashes[name])} installed packages register the {self.kind} {name!r}: "
                            f"{'; '.join(self._clashes[name])}", "uninstall all but one of them")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            value = getattr(importlib.import_module(module), attribute)
        elif type(entry).__name__ == "EntryPoint":
            try:
                value = entry.load()
            except (Exception, SystemExit) as exc:  # another package's import error (or exit): name what it broke
                raise UserError(f"the {self.kind} {name!r} ({_origin(entry)}, entry point of {self.group}) cannot "
                                f"be loaded: {type(exc).__name__}: {exc}", "fix or uninstall the package that "
                                "provides it") from None
        else:
            value = entry
        if self.product is not None and not callable(value):
            raise UserError(f"the {self.kind} {name!r} is {type(value).__name__} {value!r:.60}, not a class or "
                            f"function that builds a {self.product.rpartition(':')[2]}", self._fix(name))
        self._loaded[name] = value
        return value

    def build(self, name: str, **settings: Any) -> Any:
        """The entry `name` called with `settings`: what it builds must be a `product`, else a UserError naming the
        plug-in and what it built instead."""
        built = self.get(name)(**settings)
        if self.product is not None:
            module, _, attribute = self.product.partition(":")
            product = getattr(importlib.import_module(module), attribute)
            if not isinstance(built, product):
                raise UserError(f"the {self.kind} {name!r} built {type(built).__name__} {built!r:.60}, not a "
                                f"{attribute}", self._fix(name))
        return built

    def _fix(self, name: str) -> str:
        entry = self._entries[name]
        where = f"the entry point {_origin(entry)}" if type(entry).__name__ == "EntryPoint" else "what was registered"
        return f"make {where} a subclass of {self.product.replace(':', '.')} (or a function returning one)"

    def known(self, value: Any) -> Any:
        """`value` (a name, or a list of names) when every one is registered, else the ValueError a recipe's field
        reports (a pydantic AfterValidator)."""
        return registered(value, self.names(), self.kind)

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _origin(point: Any) -> str:
    """An entry point as `module:attribute` and the distribution that declares it, where known."""
    dist = getattr(point, "dist", None)
    return f"{point.value} from {dist.name}" if dist is not None else point.value


def registrar(registry: Registry[T]) -> Callable[..., Any]:
    """The public `register_<kind>` function of `registry`: register(name, plugin) or @register(name)."""
    def register(name: str, plugin: T | None = None, *, replace: bool = False) -> Any:
        return registry.register(name, plugin, replace=replace)

    register.__doc__ = (f"Register a {registry.kind} under `name` (or use as a decorator); other packages can "
                        f"instead declare an entry point in the group {registry.group!r}.")
    return register


def registered(value: Any, names: Iterable[str], what: str) -> Any:
    """`value` (a name, or a list of names) when every name is in `names` (a registry's); else a ValueError listing
    them, as a recipe's field validator raises it."""
    names = list(names)
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(names)}")
        return value
    unknown = [v for v in value if v not in names]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; expected some of {', '.join(names)}")
    return value
