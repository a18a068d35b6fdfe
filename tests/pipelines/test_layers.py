"""Imports between the packages of `pipelines/` go one way: each package's `__init__` docstring
names the packages it may import ("May import: ..."), and this walks every import to hold it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
# The vocabulary every package shares; anyone may import these, they import no package.
SHARED = frozenset({"settings", "errors", "styles"})
_MAY_IMPORT = re.compile(r"^May import: (.+?)\.?$", re.M)


def allowed_imports(root: Path) -> dict[str, frozenset[str]]:
    """Package name -> the packages its docstring allows (a package without the line fails)."""
    rules: dict[str, frozenset[str]] = {}
    for init in sorted(root.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        found = _MAY_IMPORT.search(doc)
        if found is None:
            raise AssertionError(f"{init}: the docstring has no 'May import: ...' line")
        names = found.group(1)
        rules[init.parent.name] = frozenset() if names.startswith("only the shared") else frozenset(
            name.strip() for name in names.split(",")
        )
    return rules


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in a file, relative imports resolved."""
    package = ".".join((root.name, *path.relative_to(root).parent.parts))
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            # `from pipelines import jobs` names a package as well as `import pipelines.jobs`.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names] if base == root.name else []
            found.append((node.lineno, base))
    return found


def violations(root: Path) -> list[str]:
    """Every import that breaks the layering, as 'file:line: a imports b (allowed: ...)'."""
    rules = allowed_imports(root)
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        source = parts[0] if len(parts) > 1 else None  # None: a shared module at the top
        for line, module in imported_modules(path, root):
            top = module.split(".")[0]
            if top == "service":
                problems.append(f"{path}:{line}: imports service.py, which only BentoML imports")
                continue
            if top != root.name or module == root.name:
                continue
            target = module.split(".")[1]
            if target in SHARED or target == source or not (root / target).is_dir():
                continue
            allowed = SHARED if source is None else rules.get(source, frozenset())
            if target not in allowed:
                who = source or path.stem
                problems.append(f"{path}:{line}: {who} imports {target} (allowed: {', '.join(sorted(allowed)) or 'shared only'})")
    return problems


def test_packages_import_only_what_their_docstring_allows() -> None:
    assert violations(PIPELINES) == []


def test_the_allowed_imports_form_no_cycle() -> None:
    rules = allowed_imports(PIPELINES)
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"a cycle in the allowed imports: {' -> '.join((*path, package))}"
        if package not in done:
            for target in rules.get(package, frozenset()):
                visit(target, (*path, package))
            done.add(package)

    for package in rules:
        visit(package, ())
    assert set().union(*rules.values()) <= set(rules), "a 'May import' line names a package that does not exist"


def test_only_subpackages_and_shared_modules_at_the_top() -> None:
    modules = {p.stem for p in PIPELINES.glob("*.py")} - {"__init__"}
    assert modules == SHARED


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from pipelines.high.thing import X\n", "low imports high"),
        ("from pipelines import high\n", "low imports high"),
        ("from ...high import thing\n", "low imports high"),
        ("import service\n", "imports service.py"),
    ],
)
def test_a_forbidden_import_is_found(tmp_path: Path, source: str, expected: str) -> None:
    root = tmp_path / "pipelines"
    for name, may in [("low", "only the shared modules."), ("high", "low.")]:
        (root / name / "sub").mkdir(parents=True)
        (root / name / "__init__.py").write_text(f'"""A package.\n\nMay import: {may}\n"""\n')
    (root / "high" / "ok.py").write_text("from pipelines.low.sub import thing\nfrom pipelines.errors import BadInput\n")
    (root / "low" / "sub" / "bad.py").write_text(source)
    found = violations(root)
    assert len(found) == 1 and expected in found[0], found
