"""The package's folders are its architecture: imports point down only (stages > models, analysis >
data, estimators > edges), so a module never reaches into a layer above it and there are no import circles."""
from __future__ import annotations

import ast
from pathlib import Path

from helpers.paths import REPO

PKG = REPO / "src" / "transferability"
# folder (or top-level module) -> what it may import from the package; None: anything.
MAY_IMPORT = {
    "errors": set(), "io": set(), "threads": set(), "provenance": set(), "config": {"errors"},
    "tracking": {"config", "errors"},
    "estimators": set(),
    "data": {"config", "errors", "io", "threads"},
    "models": {"data", "estimators", "config", "errors", "io"},
    "analysis": {"estimators", "config", "errors", "io", "provenance"},
    "stages": None, "bench": None,
    "report": {"stages", "config", "errors"},   # results pages from analysis folders: reads what stages write
    "__init__": {"estimators"},
}


def package_imports(path: Path) -> set[str]:
    """The first-level package names (folders or edge modules) that `path` imports."""
    rel = path.relative_to(PKG).with_suffix("")
    pkg = list(rel.parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                mod = pkg[: len(pkg) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "transferability":
                mod = node.module.split(".")[1:]
            else:
                continue
            found |= {mod[0]} if mod else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("transferability.")}
    return found


def test_every_module_belongs_to_a_known_layer():
    tops = {p.relative_to(PKG).with_suffix("").parts[0] for p in PKG.rglob("*.py")}
    assert tops <= set(MAY_IMPORT), tops - set(MAY_IMPORT)


def test_imports_point_down_only():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        top = path.relative_to(PKG).with_suffix("").parts[0]
        allowed = MAY_IMPORT[top]
        if allowed is None:
            continue
        bad += [f"{path.relative_to(PKG)} imports {name}" for name in package_imports(path) - allowed - {top}]
    assert not bad, "\n".join(bad)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The rule above can fail: a data module importing a stage is reported."""
    fake = tmp_path / "transferability"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "bad.py").write_text("from ..stages.transfer import run_transfer\nfrom ..io import write_json\n")
    monkeypatch.setattr(__import__(__name__), "PKG", fake)
    assert package_imports(fake / "data" / "bad.py") == {"stages", "io"}
