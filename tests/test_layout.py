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
