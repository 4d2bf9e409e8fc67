"""The layering rules of the import packages, checked on their source (ARCHITECTURE.md, layout),
and a declared dependency bound the shared estimator layer relies on.

ruff's PLC2701 (``make lint``) treats a whole top-level package as one: it flags
``loaders`` importing a private name of ``neurogeom``, but not ``neurogeom.capacity`` importing
one from ``neurogeom.regression.predictivity`` (the kind of import issue 11 removed). This test
draws the boundary at every package: a private name (or private module) may be imported only
from inside the package that holds it, so ``neurogeom._backend`` serves every subpackage of
``neurogeom``, while ``neurogeom.regression._stats`` serves ``neurogeom.regression`` alone.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("neurogeom", "loaders", "neurogeom_cli")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _modules():
    """(path, package parts, module parts) of every module of the import packages."""
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
                yield path, parts, parts
            else:
                yield path, parts[:-1], parts


def _imported(tree: ast.AST, package: list):
    """(line, dotted target) of every import, relative ones resolved: ``from a.b import c``
    gives ``a.b.c`` (c may be a module or a name)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                yield node.lineno, module + [alias.name]


def _owner(target: list) -> list | None:
    """The package that holds the first private part of ``target`` (None: nothing private)."""
    first = next((i for i, part in enumerate(target) if _private(part)), None)
    if first is None:
        return None
    holder = target[:first]                       # a package or a module
    return holder if (ROOT.joinpath(*holder)).is_dir() else holder[:-1]


def cross_package_private_imports(modules=None) -> list[str]:
    found = []
    for path, package, _ in modules or _modules():
        for line, target in _imported(ast.parse(path.read_text()), package):
            if target[0] not in PACKAGES:
                continue
            owner = _owner(target)
            if owner is not None and package[:len(owner)] != owner:
                found.append(f"{'/'.join(package)}/{path.name}:{line}: {'.'.join(target)} "
                             f"(private to {'.'.join(owner)})")
    return found


def test_no_module_imports_another_packages_private_names():
    assert cross_package_private_imports() == []


@pytest.mark.parametrize("source, package, flagged", [
    # the import issue 11 removed: a sibling subpackage's private helper
    ("from ..regression.predictivity import _row_splits", ["neurogeom", "latent"], True),
    ("from neurogeom.regression import _stats", ["neurogeom", "capacity"], True),
    ("from neurogeom.assembly import _coord_problem", ["loaders"], True),
    ("import neurogeom._version", ["neurogeom_cli"], True),
    # the shared middle layer: top-level private modules serve every subpackage of neurogeom
    ("from .._backend import get_namespace", ["neurogeom", "capacity"], False),
    ("from neurogeom._results import build_result", ["neurogeom", "latent"], False),
    # inside one package, and public names, are fine
    ("from ._stats import pearson_columns", ["neurogeom", "regression"], False),
    ("from .calcium import _object_path", ["loaders", "nwb"], False),
    ("from neurogeom import __version__", ["loaders"], False),
])
def test_the_rule_draws_the_boundary_at_every_package(tmp_path, source, package, flagged):
    probe = tmp_path / "zz_probe.py"      # read as if it were <package>/zz_probe.py
    probe.write_text(source + "\n")
    found = cross_package_private_imports([(probe, package, package + ["zz_probe"])])
    assert bool(found) is flagged, found


def test_the_cli_is_its_own_package_and_nothing_imports_it():
    """neurogeom_cli depends on neurogeom and loaders; neither imports it back (no cycle), and
    the analyses never import loaders."""
    back = []
    for path, package, _ in _modules():
        if package[0] == "neurogeom_cli":
            continue
        for line, target in _imported(ast.parse(path.read_text()), package):
            if target[0] == "neurogeom_cli" or (package[0] == "neurogeom"
                                                 and target[0] == "loaders"):
                back.append(f"{path.relative_to(ROOT)}:{line}: {'.'.join(target)}")
    assert back == []
    assert not (ROOT / "neurogeom" / "cli").exists() and not (ROOT / "neurogeom" / "cli.py").exists()


def test_declared_scikit_learn_has_the_api_the_estimators_call():
    """neurogeom/_estimators.py calls ``check_array(ensure_all_finite=...)``, a keyword
    scikit-learn 1.6 introduced (it was ``force_all_finite`` before): the declared lower bound
    must be at least 1.6."""
    import re

    # (no tomllib: Python 3.10 is supported) the one dependency line that names scikit-learn
    spec = re.search(r'^\s*"scikit-learn([^"]*)"', (ROOT / "pyproject.toml").read_text(),
                     re.MULTILINE).group(1)
    low = tuple(int(x) for x in re.search(r">=\s*([\d.]+)", spec).group(1).split(".")[:2])
    assert "ensure_all_finite" in (ROOT / "neurogeom" / "_estimators.py").read_text()
    assert low >= (1, 6), spec
