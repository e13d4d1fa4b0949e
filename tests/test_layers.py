"""The layers of the package, read from its source: the engine knows no domain, no web
and no CLI; a domain knows no web and no CLI; no module imports itself back in a circle.
Imports inside functions count: deferring one hides a dependency, it does not remove it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "synthbox"
INTERFACES = ("synthbox.web", "synthbox.cli")
DOMAINS = ("synthbox.mail", "synthbox.orchestration", "synthbox.accounts",
           "synthbox.alerting", "synthbox.userqueues", "synthbox.faktory")
HOST = ("synthbox.host", "synthbox.bench", "synthbox.app", "synthbox.services")
RULES = (  # (modules under this name, may not import these)
    ("synthbox.jobs", (*INTERFACES, *DOMAINS, *HOST, "synthbox.queues")),
    ("synthbox.records", (*INTERFACES, *DOMAINS, *HOST, "synthbox.queues", "synthbox.jobs")),
    *((domain, (*INTERFACES, *HOST)) for domain in DOMAINS),
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path) -> Iterator[tuple[list[str], int]]:
    """The synthbox modules each import statement of `path` names, at any depth (for
    `from a import b`: a.b, then a), with its line."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        targets = [t for t in targets if t.split(".")[0] == root.name]
        if targets:
            yield targets, node.lineno


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden_imports(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        for layer, banned in RULES:
            if not within(name, layer):
                continue
            for targets, line in imports(path, root):
                bad = [t for t in targets if any(within(t, b) for b in banned)]
                if bad:
                    found.append(f"{path.relative_to(root.parent)}:{line} imports {bad[0]}")
    return found


def test_the_engine_knows_no_domain_and_a_domain_knows_no_interface():
    assert forbidden_imports(PACKAGE) == []


@pytest.mark.parametrize("where, source", [
    ("jobs/engine.py", "def f():\n    from synthbox.mail.service import EmailService\n"),
    ("jobs/store.py", "import synthbox.web.api.jobs\n"),
    ("jobs/runner.py", "from synthbox import queues\n"),
    ("mail/delivery.py", "from synthbox.cli.base import with_engine\n"),
    ("orchestration/agents.py", "from ..web import actions\n"),
])
def test_the_layer_check_finds_a_forbidden_import(tmp_path, where, source):
    """The check itself: a forbidden import anywhere in a module, even inside a function
    or relative, is reported with its file and line."""
    root = tmp_path / "synthbox"
    for folder in ("jobs", "mail", "orchestration"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / where).write_text(source)
    found = forbidden_imports(root)
    assert len(found) == 1 and found[0].startswith(f"synthbox/{where}:")


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules it imports (a package's `__init__` counts as its name; importing
    a package's submodule runs the package first, but that is not an edge of its own)."""
    paths = {module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges = graph.setdefault(name, set())
        for targets, _line in imports(path, root):
            module = next((t for t in targets if t in paths), None)
            if module is not None and module != name:
                edges.add(module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_in_a_circle():
    assert cycles(import_graph(PACKAGE)) == []


def test_the_cycle_check_finds_a_circle_through_a_deferred_import(tmp_path):
    root = tmp_path / "synthbox"
    (root / "jobs").mkdir(parents=True)
    for name in ("__init__.py", "jobs/__init__.py"):
        (root / name).write_text("")
    (root / "jobs" / "store.py").write_text("from synthbox.jobs.tallies import tally\n")
    (root / "jobs" / "tallies.py").write_text(
        "def tally():\n    from synthbox.jobs import store\n")
    assert cycles(import_graph(root)) == [["synthbox.jobs.store", "synthbox.jobs.tallies"]]


def deferred_imports(root: Path) -> list[str]:
    """SynthBox's own modules imported inside a function, with the line's text."""
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for statement in node.body:
                    for sub in ast.walk(statement):
                        if isinstance(sub, ast.Import | ast.ImportFrom) and any(
                                t.split(".")[0] == root.name for t in _names(sub)):
                            found.append(f"{path.relative_to(root.parent)}:{sub.lineno}: "
                                         f"{lines[sub.lineno - 1].strip()}")
    return sorted(set(found))


def _names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return [alias.name for alias in node.names]


def test_few_imports_are_deferred_and_each_says_why():
    """An import inside a function hides a dependency: the few left keep memory or start-up
    small, and each says so on its line."""
    found = deferred_imports(PACKAGE)
    assert len(found) <= 10, found
    assert [line for line in found if "  # " not in line] == []


def test_no_module_over_400_lines_and_no_function_over_60():
    """Small modules, short functions (STYLE): split a module as it passes 400 lines."""
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        where = path.relative_to(PACKAGE.parent)
        if len(source.splitlines()) > 400:
            too_long.append(f"{where}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    too_long.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    assert too_long == []
