import sys
import textwrap

import pytest

from edgewise.base.errors import UserError
from edgewise.base.registry import Registry, registrar


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
