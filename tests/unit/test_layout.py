"""The package's shape, enforced: the stages import downwards only, nothing imports in a circle, the
publishing code imports nothing from poisonlab, and no module outgrows ~400 lines (theory aside)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

CODE = Path(__file__).resolve().parents[2] / "code"
# each stage may import those before it, never those after (chapters and the CLI sit on top of all)
ENGINE = ("validate", "errors", "storage", "data", "models", "attacks", "defenses", "train", "metrics", "solvers")
STAGES = {**{name: 0 for name in ENGINE}, "stats": 1, "lab": 2, "book": 3, "chapters": 4, "cli": 4, "__main__": 4}


def _module(path: Path) -> str:
    parts = list(path.relative_to(CODE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside functions, as absolute dotted names."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # imports for type checkers only do not run: leave them out
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            root = ".".join([*base, node.module] if node.module else base)
            subs = {f"{root}.{a.name}" for a in node.names}
            out.update(subs)  # `from . import x` imports module x ...
            if not subs <= MODULES:  # ... and `from .m import f` imports module m
                out.add(root)
    return out


MODULES = {_module(p) for p in CODE.rglob("*.py") if "__pycache__" not in p.parts}


def _graph(package: str) -> dict[str, set[str]]:
    files = {_module(p): p for p in (CODE / package).rglob("*.py") if "__pycache__" not in p.parts}
    return {m: {i for i in _imports(p) if i in files and i != m} for m, p in files.items()}


def _stage(module: str) -> int:
    return STAGES[module.split(".")[1]]


def test_stages_import_downwards_only():
    wrong = [f"{m} imports {i}" for m, deps in _graph("poisonlab").items() if m != "poisonlab"
             for i in deps if i != "poisonlab" and _stage(i) > _stage(m)]
    assert not wrong, wrong


def test_no_import_cycles():
    for package in ("poisonlab", "bookrender"):
        graph = _graph(package)
        state: dict[str, int] = {}

        def visit(m, path):
            state[m] = 1
            for i in sorted(graph[m]):
                if state.get(i) == 1:
                    pytest.fail(f"import cycle: {' -> '.join([*path, m, i])}")
                if i not in state:
                    visit(i, [*path, m])
            state[m] = 2

        for m in sorted(graph):
            if m not in state:
                visit(m, [])


def test_publishing_imports_nothing_from_poisonlab():
    found = [f"{p.name}: {i}" for p in (CODE / "bookrender").rglob("*.py") for i in _imports(p)
             if i.split(".")[0] == "poisonlab"]
    assert not found, found


def test_modules_stay_small():
    big = {str(p.relative_to(CODE)): n for p in CODE.rglob("*.py")
           if p.name != "theory.py" and (n := len(p.read_text(encoding="utf-8").splitlines())) > 420}
    assert not big, big
