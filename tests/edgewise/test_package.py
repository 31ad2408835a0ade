"""One installed package whose parts depend on each other one way, a lazy public API, and a wheel with one name."""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import edgewise

ROOT = Path(__file__).resolve().parents[2]
# the folder of each installed subpackage (setuptools package-dir in pyproject.toml)
FOLDERS = {"edgewise": "edgewise", "edgewise.compress": "compress", "edgewise.export": "export",
           "edgewise.runtime": "runtime", "edgewise.bench": "bench", "edgewise.board": "board",
           "edgewise.targets": "targets", "edgewise.examples": "examples"}
# the layers and what each may import: the front door sits on everything, the board package (what a deploy bundle
# ships whole) on nothing of the kit
ALLOWED = {
    "board": set(),
    "base": {"board"},
    "targets": {"base", "board"},
    "compress": {"base", "board"},
    "runtime": {"base", "targets", "board"},
    "export": {"base", "compress", "board"},
    "bench": {"base", "targets", "runtime", "export", "board"},
}


def _layer(module: str) -> str:
    """The layer a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "front door"


@functools.cache
def _modules() -> dict[str, Path]:
    """Every module of the kit by its installed name."""
    out = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def _imports(path: Path) -> set[str]:
    """The modules `path` imports, by import statement or by name in a call (importlib.import_module's argument, or
    any function that takes a module's name)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call):
            found |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                      and re.fullmatch(r"edgewise(\.\w+)+", a.value) and a.value.split(".")[1] in _subpackages()}
    return found


@functools.cache
def _subpackages() -> set[str]:
    """The names of the kit's subpackages (compress, export, bench, board, base, core, ...): what a module name in a
    string starts with, where an entry-point group or a metadata key (edgewise.criteria) does not."""
    return {name.split(".")[1] for name, path in _modules().items() if path.name == "__init__.py" and "." in name}


def _escapes(path: Path, depth: int) -> list[str]:
    """The relative imports of `path`, a module `depth` packages below the board package's top, that reach out of
    it (`from .. import x` in board/runner.py is the kit's edgewise package)."""
    return [f"{'.' * node.level}{node.module or ''}" for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and node.level > depth + 1]


def _folder_paths(path: Path, folders: tuple[str, ...]) -> list[str]:
    """String constants of `path` that name one of `folders` as a path part: a file copied from another layer's
    folder by path ("bench" / "energy"), which no import statement shows."""
    return [node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and set(re.split(r"[/\\]", node.value)) & set(folders)]


def test_no_module_imports_the_folders_by_their_bare_names():
    bare = ("compress", "export", "runtime", "bench", "board", "targets")
    offenders = sorted(f"{name}: {imported}" for name, path in _modules().items() for imported in _imports(path)
                       if imported.split(".")[0] in bare)
    assert not offenders, offenders


def test_the_board_package_imports_nothing_of_the_kit():
    """What a deploy bundle ships whole runs on a board without the kit: no import of edgewise (statement, string
    or a relative import above the package), so the bundle's copy and the kit's module are one code."""
    offenders = []
    for name, path in _modules().items():
        if name.startswith("edgewise.board"):
            depth = len(path.relative_to(ROOT / "board").parts) - 1
            offenders += [f"{name}: {i}" for i in _imports(path) if i.split(".")[0] == "edgewise"]
            offenders += [f"{name}: {i}" for i in _escapes(path, depth)]
    assert not offenders, offenders


def test_export_does_not_reach_bench():
    """Bundles take the board's code from the board package: export neither imports bench (by statement or by
    name) nor copies its files by path."""
    offenders = []
    for name, path in _modules().items():
        if name.startswith("edgewise.export"):
            offenders += [f"{name} imports {i}" for i in _imports(path) if i.startswith("edgewise.bench")]
            offenders += [f"{name} names the path {p!r}" for p in _folder_paths(path, ("bench",))]
    assert not offenders, offenders


def test_the_checks_find_a_planted_violation(tmp_path):
    """Each check above, on a module that breaks it: an import_module string, a copied path, an escaping import."""
    planted = tmp_path / "planted.py"
    planted.write_text("import importlib\nfrom pathlib import Path\nfrom ..export import bundles\n"
                       "energy = importlib.import_module('edgewise.bench.energy')\n"
                       "ENERGY = Path(__file__).parent.parent / 'bench' / 'energy'\n", encoding="utf-8")
    assert "edgewise.bench.energy" in _imports(planted)
    assert _folder_paths(planted, ("bench",)) == ["bench"]
    assert _escapes(planted, 0) == ["..export"] and _escapes(planted, 1) == []


def test_the_layers_depend_one_way():
    edges = set()
    for name, path in _modules().items():
        source = _layer(name)
        for imported in _imports(path):
            if imported.split(".")[0] == "edgewise":
                target = _layer(imported)
                if source != target:
                    edges.add((source, target, name, imported))
    wrong = sorted(f"{s} -> {t} ({n} imports {i})" for s, t, n, i in edges
                   if s != "front door" and t not in ALLOWED[s])
    assert not wrong, wrong


def _package(module: str) -> str:
    """The package a module belongs to, for the package graph: edgewise's own modules (cli, commands, pipeline,
    recipe, sweep, ...) are the front door, `edgewise`; every subpackage is itself (edgewise.core, edgewise.zoo,
    edgewise.compress, ...); compress's, export's and bench's own subpackages count as theirs."""
    parts = module.split(".")
    if len(parts) == 1 or (module in _modules() and _modules()[module].parent == ROOT / "edgewise"):
        return "edgewise"
    return ".".join(parts[:2])


def _resolved_imports(path: Path, known: set[str]) -> set[str]:
    """The kit's modules `path` imports, function-level imports included; `from edgewise import compress` is the
    subpackage, not the front door's __init__."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "edgewise"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == \
                "edgewise":
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
    return found


def test_no_two_packages_import_each_other_at_any_depth():
    """The package graph is acyclic: base < core < zoo, report < stages < the front door (cli, commands, pipeline,
    recipe), with the libraries (compress, export, runtime, bench, targets) below the front door."""
    modules = _modules()
    known = set(modules)
    edges: dict[str, dict[str, str]] = {}
    for name, path in modules.items():
        source = _package(name)
        for imported in _resolved_imports(path, known):
            target = _package(imported)
            if target != source:
                edges.setdefault(source, {}).setdefault(target, f"{name} imports {imported}")
    cycles = []
    for a, targets in edges.items():
        for b, why in targets.items():
            if a in edges.get(b, {}):
                cycles.append(f"{a} <-> {b}: {why}; {edges[b][a]}")
            seen, stack = set(), [b]
            while stack:  # a longer cycle through b back to a
                node = stack.pop()
                for nxt in edges.get(node, {}):
                    if nxt == a and node != b:
                        cycles.append(f"{a} -> {b} -> ... -> {node} -> {a}: {why}; {edges[node][a]}")
                    elif nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
    assert not cycles, sorted(set(cycles))
    assert not set(edges.get("edgewise.core", {})) & {"edgewise", "edgewise.stages", "edgewise.report",
                                                       "edgewise.zoo"}, edges.get("edgewise.core")


# what an in-function import may defer: the libraries that make an import slow or a process large
DEFERRED = {"torch", "torchvision", "onnx", "onnxruntime", "onnx2torch", "ray", "zennit", "torch_pruning", "nncodec",
            "timm", "scipy", "sklearn", "matplotlib"}


def _top_level_imports(name: str) -> tuple[set[str], set[str]]:
    """The kit's modules and the other top-level packages module `name` imports when it is imported (module level,
    inside `if` and `try` but not `if TYPE_CHECKING`), its parent packages included."""
    modules, path = _modules(), _modules()[name]
    kit, other = {".".join(name.split(".")[:i]) for i in range(2, name.count(".") + 1)} & set(modules), set()

    def resolve(module: str, names: list[str]) -> None:
        kit.update({m for m in (module, *(f"{module}.{n}" for n in names)) if m in modules})

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    (resolve(alias.name, []) if alias.name.startswith("edgewise") else
                     other.add(alias.name.split(".")[0]))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    package = name.split(".")[: name.count(".") + (path.name == "__init__.py") - node.level + 1]
                    resolve(".".join([*package, *([node.module] if node.module else [])]), [a.name for a in node.names])
                elif node.module.startswith("edgewise"):
                    resolve(node.module, [a.name for a in node.names])
                else:
                    other.add(node.module.split(".")[0])
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.dump(node.test):
                visit(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body + node.orelse + [s for h in node.handlers for s in h.body])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return kit, other


@functools.cache
def _heavy(name: str) -> frozenset[str]:
    """The DEFERRED libraries importing module `name` loads, through the kit's modules it imports."""
    found, seen, stack = set(), {name}, [name]
    while stack:
        kit, other = _top_level_imports(stack.pop())
        found |= other & DEFERRED
        stack += [m for m in kit - seen]
        seen |= kit
    return frozenset(found)


def test_a_kit_import_inside_a_function_defers_a_heavy_library():
    """An import of the kit's own code inside a function hides the call graph from static tools; it is there only
    where it keeps torch, onnx, ray and their like out of a module that does not load them yet. The command line
    (edgewise.cli) defers every import past its argument parsing, so `edgewise --help` and a bad argument answer at
    once."""
    modules = _modules()
    pointless = []
    for name, path in modules.items():
        if name in ("edgewise.cli", "edgewise.__main__"):
            continue
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.startswith("edgewise"):
                    targets = {m for m in (node.module, *(f"{node.module}.{a.name}" for a in node.names))
                               if m in modules}
                elif isinstance(node, ast.Import) and node.names[0].name.startswith("edgewise"):
                    targets = {node.names[0].name} & set(modules)
                else:
                    continue
                if not set().union(*map(_heavy, targets)) - _heavy(name):
                    pointless.append(f"{name}:{node.lineno} ({function.name})")
    assert not pointless, pointless


def test_every_onnx_runtime_session_takes_the_kits_options():
    """One place builds ONNX Runtime's SessionOptions (board.session.session_options): logging, optimisation level,
    threads and profiling are then set alike for every session the kit makes."""
    builders = sorted(name for name, path in _modules().items() if name != "edgewise.board.session"
                      for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                      if isinstance(node, ast.Attribute) and node.attr == "SessionOptions")
    assert not builders, builders


def test_import_edgewise_is_cheap_and_the_api_resolves():
    code = ("import sys, edgewise as ew; assert 'torch' not in sys.modules, 'torch'; "
            "names = [n for n in ew.__all__ if n != '__version__']; "
            "[getattr(ew, n) for n in names]; assert callable(ew.bench); print(len(names))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert int(completed.stdout) >= 10
    assert {"prune", "quantize", "fold_batchnorm", "encode", "decode", "to_onnx", "open_session", "bench",
            "IntegerMLP", "run"} <= set(edgewise.__all__)


def test_the_base_layer_imports_nothing_heavier_than_numpy():
    names = sorted(n for n in _modules() if n.startswith("edgewise.base"))
    code = (f"import sys\nfor name in {names!r}:\n    __import__(name)\n"
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'scipy', 'pydantic') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_api_names_are_the_objects_not_modules():
    import types

    for name in edgewise.__all__:
        if name not in ("__version__", "bench"):
            assert not isinstance(getattr(edgewise, name), types.ModuleType), name
    from edgewise import export

    for name in export.__all__:
        assert not isinstance(getattr(export, name), types.ModuleType), name


@pytest.mark.slow
def test_the_wheel_holds_one_top_level_package(tmp_path):
    import shutil

    source = tmp_path / "source"  # setuptools builds inside the source tree: a copy keeps the checkout clean
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, source / name)
    for folder in [*FOLDERS.values(), "benchmarks"]:
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    completed = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                                "-q", "-w", str(tmp_path)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    names = zipfile.ZipFile(next(tmp_path.glob("edgewise-*.whl"))).namelist()
    # the kit's own benchmark suite is an application of the kit, run from a checkout: not in the wheel
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"edgewise"}
    assert not [n for n in names if "benchmarks" in n or n.endswith("suite.py")]
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            assert "/".join([*package.split("."), *path.relative_to(ROOT / folder).parts]) in names, path
    assert "edgewise/targets/data/jetson-orin-nx.yaml" in names and "edgewise/recipes/default.yaml" in names
