"""The design card's layout holds: stage packages meet only through the core."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("crawlers", "cleaning", "augment", "splitting", "training")


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports, at any place in the file (function bodies included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_stage_packages_never_import_each_other():
    crossings = [
        f"{path.relative_to(REPO)} imports {other}"
        for stage in STAGES
        for path in sorted((REPO / stage).rglob("*.py"))
        for other in sorted(imported_packages(path) & set(STAGES) - {stage})
    ]
    assert crossings == []


def test_the_import_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from cleaning.dedup import x\n    import augment.eda\n", encoding="utf-8")
    assert imported_packages(module) == {"cleaning", "augment"}


def core_imports(path: Path) -> set[str]:
    """``corpusmill.*`` modules a core module imports, anywhere in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("corpusmill."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("corpusmill"):
            module = node.module or ""
            for (
                alias
            ) in node.names:  # ``from corpusmill import io`` names a module; ``from corpusmill.io import x`` not
                candidate = f"{module}.{alias.name}"
                names.add(candidate if _module_path(candidate) else module)
    return {name for name in names if _module_path(name)} - {path_module(path)}


def _module_path(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def path_module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_cycles(modules: dict[str, set[str]]) -> list[list[str]]:
    """Every module that can reach itself through the import graph, with one such path."""
    cycles = []
    for start in sorted(modules):
        stack, seen = [(start, [start])], set()
        while stack:
            module, path = stack.pop()
            for target in sorted(modules.get(module, ())):
                if target == start:
                    cycles.append([*path, start])
                    stack = []
                    break
                if target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    return cycles


def test_no_core_module_imports_one_that_imports_it_back():
    """At any depth, through imports in function bodies too: data classes in one module, the
    executor, release writer and card depend on them, nothing depends back."""
    graph = {path_module(path): core_imports(path) for path in sorted((REPO / "corpusmill").rglob("*.py"))}
    assert graph["corpusmill.executor"] >= {"corpusmill.release", "corpusmill.reports"}  # the parser sees them
    assert import_cycles(graph) == []


def test_the_cycle_check_finds_a_cycle_through_a_third_module():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [cycle[0] for cycle in import_cycles(graph)] == ["a", "b", "c"]


STAGE_NAMES = ("ingest", "read", "clean", "augment")
"""(Not "split": a release's splits are its own vocabulary, in its tables and its card's data files.)"""


def test_the_executor_release_writer_card_and_service_name_no_stage():
    """They run, write and show whatever list of steps a config makes; which sections a config
    has is the config's business (and the steps' labels carry it)."""
    found = []
    service = ("service/app.py", "service/runners.py", "service/web.py", "service/browse.py")
    for name in ("executor.py", "ray_executor.py", "release.py", "card.py", *service):
        tree = ast.parse((REPO / "corpusmill" / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in STAGE_NAMES:
                found.append(f"{name}:{node.lineno} {node.value!r}")
    assert found == []
