"""The package's modules import one another without circles: every import statement (at the
top of a module or inside a function) is read with ast, resolved to a module of bea_lib, and the
graph must have no cycle. A cycle shows up as the list of modules on it."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bea_lib"


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the modules of the package it imports (anywhere in its file)."""
    files = {_module_name(p, package): p for p in package.rglob("*.py")}
    graph = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in files else stem
                           for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    graph = import_graph()
    assert "bea_lib.core.flows" in graph and "bea_lib.nets.train" in graph  # the package was read
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    # the check can fail: the flows <-> minibatch circle this package once had
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    real = import_graph()
    real["bea_lib.core.expansion"].add("bea_lib.core.flows")
    assert any({"bea_lib.core.expansion", "bea_lib.core.flows"} <= set(c) for c in cycles(real))


def test_the_runner_and_the_file_helpers_load_no_torch():
    # bea_lib's names load on first use, so the book's runner imports fileio and provenance
    # normally and still starts without torch (seconds); a fresh process, as the runner is
    import subprocess
    import sys

    code = ("import sys, bea_lib.base.fileio, bea_lib.base.provenance, bea_book.store, "
            "bea_book.execute; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent)
    assert out.stdout.strip() == "False"
    import bea_lib as bl
    assert all(hasattr(bl, name) for name in bl.__all__) and bl.expansion.bias_direction


def runner_imports(package: Path = PACKAGE) -> list[tuple[str, int]]:
    """(file, line) of every import of the runner ``bea_book`` in the package, at any depth:
    import statements, and ``import_module``/``__import__`` of a literal name."""
    found = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module or ""]
            elif (isinstance(node, ast.Call) and node.args
                  and isinstance(node.args[0], ast.Constant)
                  and getattr(node.func, "attr", getattr(node.func, "id", None))
                  in ("import_module", "__import__")):
                names = [str(node.args[0].value)]
            else:
                continue
            found += [(path.relative_to(package.parent).as_posix(), node.lineno)
                      for name in names if name.split(".")[0] == "bea_book"]
    return sorted(found)


def test_the_library_never_imports_the_runner():
    assert runner_imports() == []


def test_the_runner_check_finds_imports_inside_functions(tmp_path):
    (tmp_path / "bea_lib" / "nets").mkdir(parents=True)
    (tmp_path / "bea_lib" / "nets" / "x.py").write_text(
        "import os\n\n\ndef main():\n    from bea_book.params import chapter_parameters\n"
        "    return importlib.import_module('bea_book.sources')\n")
    assert runner_imports(tmp_path / "bea_lib") == [("bea_lib/nets/x.py", 5),
                                                    ("bea_lib/nets/x.py", 6)]


LAYERS = {"base": 0, "core": 1, "studies": 2, "nets": 3, "evidence": 4, "figures": 4}


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """The imports from a layer folder of bea_lib to a higher one, or between two folders of
    the same height (no arrow runs upward; :data:`LAYERS`, bottom first)."""
    def layer(module):
        return module.split(".")[1] if module.count(".") >= 2 else None

    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if layer(a) in LAYERS and layer(b) in LAYERS and layer(a) != layer(b)
                  and LAYERS[layer(b)] >= LAYERS[layer(a)])


def test_every_import_runs_down_the_layers():
    graph = import_graph()
    assert {name.split(".")[1] for name in graph if name.count(".") >= 2} == set(LAYERS)
    assert upward_imports(graph) == []
    graph["bea_lib.core.flows"].add("bea_lib.nets.loop")  # the check can fail
    assert upward_imports(graph) == [("bea_lib.core.flows", "bea_lib.nets.loop")]
