import sys
import textwrap

import pytest

from edgewise.base.registry import Registry, registrar
from edgewise.board.errors import UserError


def test_builtin_entries_are_named_without_importing_them():
    registry = Registry("widget", "edgewise.test-widgets", {"json": "json:dumps", "nowhere": "no_such_module:f"})
    assert registry.names() == ("json", "nowhere") and "nowhere" in registry
    assert registry.get("json") is __import__("json").dumps
    with pytest.raises(ModuleNotFoundError):  # imported only when looked up
        registry.get("nowhere")


def test_register_as_call_and_decorator_and_a_taken_name_is_refused():
    registry = Registry("widget", "edgewise.test-widgets", {"a": len})
    register = registrar(registry)
    register("b", max)

    @register("c")
    def c():
        return 3

    assert registry.names() == ("a", "b", "c") and registry.get("c")() == 3
    with pytest.raises(UserError, match="a widget named 'a' is registered already"):
        register("a", min)
    register("a", min, replace=True)
    assert registry.get("a") is min and not registry.is_builtin("a")
    registry.unregister("b")
    with pytest.raises(UserError, match="unknown widget 'b'") as caught:
        registry.get("b")
    assert "a, c" in caught.value.fix


def test_another_package_adds_an_entry_point(tmp_path, monkeypatch):
    """A plug-in package declares `[project.entry-points."edgewise.test-widgets"]`: the registry finds it by name and
    loads it on use; one that fails to import is named with its entry point."""
    package = tmp_path / "site"
    (package / "widget_plugin").mkdir(parents=True)
    (package / "widget_plugin" / "__init__.py").write_text("def triple(x):\n    return 3 * x\n")
    info = package / "widget_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: widget-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [edgewise.test-widgets]
        triple = widget_plugin:triple
        broken = widget_plugin_missing:thing
        """))
    monkeypatch.syspath_prepend(str(package))
    registry = Registry("widget", "edgewise.test-widgets", {"one": len})
    assert registry.names() == ("one", "triple", "broken")
    assert "widget_plugin" not in sys.modules
    assert registry.get("triple")(2) == 6
    with pytest.raises(UserError, match=r"the widget 'broken' .*widget_plugin_missing:thing.* cannot be loaded"):
        registry.get("broken")


def _plugin_site(tmp_path, name, module_text, entries):
    """A site folder holding one installed distribution `name` whose module is `module_text` and whose entry points
    are `entries` (lines of the group edgewise.test-widgets)."""
    site = tmp_path / "site"
    (site / f"{name}_mod").mkdir(parents=True)
    (site / f"{name}_mod" / "__init__.py").write_text(module_text)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[edgewise.test-widgets]\n" + "\n".join(entries) + "\n")
    return site


class Widget:
    def __init__(self, size=1):
        self.size = size


def test_an_entry_that_exits_on_import_is_a_clear_error_not_a_silent_exit(tmp_path, monkeypatch):
    site = _plugin_site(tmp_path, "exiting", "import sys\nsys.exit(0)\n", ["quits = exiting_mod:thing"])
    monkeypatch.syspath_prepend(str(site))
    registry = Registry("widget", "edgewise.test-widgets", product=f"{__name__}:Widget")
    with pytest.raises(UserError, match=r"the widget 'quits' .*cannot be loaded: SystemExit"):
        registry.get("quits")


def test_what_an_entry_builds_must_be_the_registry_product(tmp_path, monkeypatch):
    """An entry that is no factory, or whose factory builds another type, is refused by name when used (a Criterion
    plug-in that is an int ended in AttributeError: 'int' object has no attribute 'scores')."""
    site = _plugin_site(tmp_path, "wrong", "number = 7\ndef makes_str(size=1):\n    return 'x'\n",
                        ["seven = wrong_mod:number", "text = wrong_mod:makes_str"])
    monkeypatch.syspath_prepend(str(site))
    registry = Registry("widget", "edgewise.test-widgets", {"plain": Widget}, product=f"{__name__}:Widget")
    assert registry.build("plain", size=3).size == 3
    with pytest.raises(UserError, match="the widget 'seven' is int 7, not a class or function that builds a Widget"
                       ) as caught:
        registry.get("seven")
    assert "wrong_mod:number from wrong" in caught.value.fix
    with pytest.raises(UserError, match="the widget 'text' built str 'x', not a Widget"):
        registry.build("text")
    registry.register("own", lambda: 3)
    with pytest.raises(UserError, match="the widget 'own' built int 3") as caught:
        registry.build("own")
    assert "what was registered" in caught.value.fix


def test_a_name_two_installed_packages_register_is_refused_when_used(tmp_path, monkeypatch):
    first = _plugin_site(tmp_path / "a", "first", "class W:\n    pass\n", ["twin = first_mod:W"])
    second = _plugin_site(tmp_path / "b", "second", "class W:\n    pass\n", ["twin = second_mod:W"])
    monkeypatch.syspath_prepend(str(first))
    monkeypatch.syspath_prepend(str(second))
    registry = Registry("widget", "edgewise.test-widgets")
    assert registry.names().count("twin") == 1
    with pytest.raises(UserError, match="2 installed packages register the widget 'twin'") as caught:
        registry.get("twin")
    assert "first_mod:W from first" in caught.value.problem and "second_mod:W from second" in caught.value.problem
