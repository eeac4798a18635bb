"""The package's folders are its architecture: imports point down only (stages > models, analysis >
data, estimators > edges), so a module never reaches into a layer above it; the modules of one folder import
each other without a circle (imports inside functions count: a lazy import hides a circle, it does not remove
it); and a module's private names (a leading underscore) stay its own.

Private names across modules: in src, no module imports another module's private name or reads one as an
attribute of an imported module. Tests follow one rule: a test reaches a private helper only as an attribute
of its module, imported whole (`import transferability.estimators.gbc as gbc_module`, then
`gbc_module._PAIR_BLOCK`, as monkeypatch does), never by `from ... import _name`."""
from __future__ import annotations

import ast
from pathlib import Path

from helpers.paths import REPO

PKG = REPO / "src" / "transferability"
TESTS = REPO / "tests"
# folder (or top-level module) -> what it may import from the package; None: anything.
MAY_IMPORT = {
    "errors": set(), "io": {"errors"}, "threads": set(), "provenance": set(), "logs": set(), "config": {"errors"},
    "identity": {"config", "io"},   # a row's identity: the config less what does not change its numbers
    "tracking": {"config", "errors", "identity"},
    "estimators": set(),
    "data": {"config", "errors", "io", "threads", "logs"},
    "models": {"data", "estimators", "config", "errors", "io", "logs"},
    "analysis": {"estimators", "config", "errors", "io", "provenance"},
    "stages": None, "bench": None,
    "report": {"stages", "config", "errors", "identity"},   # results pages: reads what stages write
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


def _module(root: Path, parts: list[str]) -> tuple[str, ...] | None:
    """The module file of dotted `parts` under `root` as its parts (a package as its __init__); None if none."""
    if (root.joinpath(*parts) / "__init__.py").is_file():
        return (*parts, "__init__")
    if parts and root.joinpath(*parts).with_suffix(".py").is_file():
        return tuple(parts)
    return None


def imported_names(path: Path, root: Path = PKG):
    """(module, name, bound) for every package import in `path` (at any depth, inside functions too): the module
    it reads (parts under `root`, a package as its __init__), the name taken from it (None when the import binds
    the module itself) and the local name the import binds. Absolute imports count when `path` is in `root`."""
    here = list(path.relative_to(root).parts[:-1]) if path.is_relative_to(root) else None
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if here is None:
                    continue
                base = here[: len(here) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == root.name:
                base = node.module.split(".")[1:]
            else:
                continue
            for a in node.names:
                sub = _module(root, base + [a.name])
                if sub is not None:
                    out.append((sub, None, a.asname or a.name))
                elif (mod := _module(root, base)) is not None:
                    out.append((mod, a.name, a.asname or a.name))
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == root.name and (mod := _module(root, parts[1:])) is not None:
                    out.append((mod, None, a.asname or parts[0]))
    return out


def import_circles(root: Path = PKG) -> list[str]:
    """Every circle of imports among the modules of one folder, as `a -> b -> a` (folder-relative names)."""
    modules = {p.relative_to(root).with_suffix("").parts: p for p in sorted(root.rglob("*.py"))}
    edges = {m: sorted({mod for mod, _, _ in imported_names(p, root) if mod[:-1] == m[:-1] and mod != m})
             for m, p in modules.items()}
    circles, done = [], set()

    def visit(m, trail):
        if m in trail:
            cycle = trail[trail.index(m):] + [m]
            key = frozenset(cycle)
            if key not in done:
                done.add(key)
                circles.append(" -> ".join("/".join(c) for c in cycle))
            return
        for nxt in edges.get(m, []):
            visit(nxt, trail + [m])

    for m in modules:
        visit(m, [])
    return circles


def private_imports(paths, root: Path = PKG, attributes: bool = True) -> list[str]:
    """`path: module.name` for each private name (one leading underscore) that a file takes from another module
    of the package: imported by name, or (with `attributes`) read as an attribute of an imported module."""
    bad = []
    for path in paths:
        own = path.relative_to(root).with_suffix("").parts if path.is_relative_to(root) else None
        found = imported_names(path, root)
        where = path.relative_to(root.parent) if path.is_relative_to(root.parent) else path
        bad += [f"{where}: imports {'.'.join(mod)}.{name}" for mod, name, _ in found
                if name and _private(name) and mod != own]
        if attributes:
            aliases = {bound: mod for mod, name, bound in found if name is None and mod != own}
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                        and node.value.id in aliases):
                    bad.append(f"{where}: reads {'.'.join(aliases[node.value.id])}.{node.attr}")
    return bad


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


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


def test_no_import_circle_within_a_folder():
    circles = import_circles()
    assert not circles, "\n".join(circles)


def test_the_checker_sees_a_circle_closed_by_a_lazy_import(tmp_path):
    """The rule above can fail: b imports a at module level and a imports b inside a function (a circle
    hidden by a lazy import); an import from another folder closes none."""
    fake = tmp_path / "transferability"
    (fake / "estimators").mkdir(parents=True)
    (fake / "estimators" / "__init__.py").write_text("")
    (fake / "estimators" / "a.py").write_text("def f():\n    from . import b\n    return b.g()\n")
    (fake / "estimators" / "b.py").write_text("from .a import f\nfrom ..io import write\n")
    (fake / "estimators" / "c.py").write_text("from transferability.estimators.b import f\n")
    (fake / "io.py").write_text("from .estimators.c import f\n")
    assert import_circles(fake) == ["estimators/a -> estimators/b -> estimators/a"]


def test_src_takes_no_private_name_from_another_module():
    bad = private_imports(sorted(PKG.rglob("*.py")))
    assert not bad, "\n".join(bad)


def test_tests_import_no_private_name():
    """The tests' rule (module docstring): a private helper only as an attribute of its module."""
    bad = private_imports(sorted(TESTS.rglob("*.py")), attributes=False)
    assert not bad, "\n".join(bad)


def test_the_checker_sees_private_names_taken_across_modules(tmp_path):
    """The rules above can fail: a private name imported by name (relative or absolute) or read off an imported
    module is reported; a module's own private names, dunders and public names are not."""
    fake = tmp_path / "transferability"
    (fake / "models").mkdir(parents=True)
    (fake / "models" / "__init__.py").write_text("")
    (fake / "models" / "training.py").write_text("def _device(a):\n    return a\n\n\ndef public():\n    return 1\n")
    (fake / "stages").mkdir()
    (fake / "stages" / "transfer.py").write_text(
        "from ..models.training import _device, public\nfrom ..models import training\n"
        "import transferability.models.training as tr\n\n\ndef _own():\n    return 0\n\n\n"
        "def f():\n    from transferability.models.training import _device as d\n"
        "    return training._device(1) + tr.public() + _own() + d(2) + tr.__name__\n")
    test = tmp_path / "tests" / "test_x.py"
    test.parent.mkdir()
    test.write_text("import transferability.models.training as tr\nfrom transferability.models.training import "
                    "_device\n\n\ndef test_it():\n    assert tr._device(1)\n")
    assert private_imports([fake / "stages" / "transfer.py"], fake) == [
        "transferability/stages/transfer.py: imports models.training._device",
        "transferability/stages/transfer.py: imports models.training._device",
        "transferability/stages/transfer.py: reads models.training._device"]
    assert private_imports([test], fake, attributes=False) == ["tests/test_x.py: imports models.training._device"]


def test_messages_go_through_logging():
    """A run's messages are `logging` records (module loggers), so Hydra's job logging shows them, prefixes them
    in a multirun and keeps them in run.log. `print` is left to what is not a run's message: the one error line
    on stderr (dispatch, the run-folder check, the report command), the output of a command's `main` (a report
    page, a generator's summary) and the benches, whose output is their report."""
    found = []
    for path in sorted(PKG.rglob("*.py")):
        if path.relative_to(PKG).parts[0] == "bench":
            continue
        tree = ast.parse(path.read_text())
        mains = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "main"
                 for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print" and id(node) not in mains:
                to_stderr = any(k.arg == "file" and ast.unparse(k.value) == "sys.stderr" for k in node.keywords)
                if not to_stderr:
                    found.append(f"{path.relative_to(PKG)}:{node.lineno}")
    assert found == [], found
