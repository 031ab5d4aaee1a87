"""The core's shape, kept by tests so a regression fails locally, not only in CI:
no import cycle between awml_harness modules, the floors of `.importlinter` hold
(import-linter), and no class grows past 200 lines (split it along what it does)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "awml_harness"
MAX_CLASS_LINES = 200


def import_cycles(package: str) -> list[list[str]]:
    """Every set of modules of `package` that import each other in a circle (strongly
    connected components of grimp's import graph, imports inside functions included)."""
    import grimp

    graph = grimp.build_graph(package, cache_dir=None)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan; the package is small, recursion is fine
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def long_classes(folder: Path, limit: int = MAX_CLASS_LINES) -> list[str]:
    """`file:line Class (n lines)` for every class in `folder`'s .py files longer than `limit`
    (decorators to last line)."""
    out = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                n = (node.end_lineno or node.lineno) - first + 1
                if n > limit:
                    out.append(f"{path.relative_to(folder.parent)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_import_cycle_between_harness_modules():
    cycles = import_cycles("awml_harness")
    assert not cycles, "modules that import each other in a circle (move the shared part below both): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_import_contracts_hold():
    """The floors, the backends' independence and the acyclic sibling check of .importlinter."""
    code = ("import sys\nfrom importlinter.cli import lint_imports\n"
            "sys.exit(lint_imports(config_filename='.importlinter', no_cache=True, no_logo=True))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_no_harness_class_over_200_lines():
    assert not long_classes(PACKAGE), f"classes over {MAX_CLASS_LINES} lines: {long_classes(PACKAGE)}"


# -- the checkers themselves find what they are for --------------------------------------
def test_cycle_check_finds_a_circle_through_a_lazy_import(tmp_path, monkeypatch):
    pkg = tmp_path / "circlepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from circlepkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from circlepkg.c import g\n    return g\n")
    (pkg / "c.py").write_text("import circlepkg.a\n\ndef g():\n    return 1\n")
    (pkg / "d.py").write_text("from circlepkg import a\n")  # imports into the circle, not part of it
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("circlepkg") == [["circlepkg.a", "circlepkg.b", "circlepkg.c"]]


def test_class_size_check_counts_decorators_and_nested_classes(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(197))
    src = f"import dataclasses\n\n@dataclasses.dataclass\nclass Big:\n{body}\n    class Inner:\n        pass\n"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(src)
    (tmp_path / "pkg" / "ok.py").write_text(textwrap.dedent("""\
        class Small:
            pass
        """))
    assert long_classes(tmp_path / "pkg") == ["pkg/m.py:4 Big (201 lines)"]
    assert long_classes(tmp_path / "pkg", limit=201) == []


def test_collecting_the_suites_imports_no_runtime():
    """`pytest suites --collect-only` with the shipped configs loads every config and
    project adapter, yet must not import a runtime (start-up stays fast)."""
    code = ("import sys, pytest\n"
            "rc = pytest.main(['suites', '--collect-only', '-q', '-p', 'no:cacheprovider'])\n"
            "print('HEAVY', sorted(m for m in ('torch', 'onnxruntime', 'tensorrt') if m in sys.modules), 'RC', int(rc))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "tests collected" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert "HEAVY [] RC 0" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
