"""The package layout: no import circles, a short top level, every config target and package declared."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "irisgan"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _owner(name: str) -> str | None:
    """The irisgan module that an imported dotted name lives in (``a.b.func`` -> ``a.b``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _ancestors(name: str) -> list[str]:
    """Importing ``irisgan.x.y`` runs ``irisgan/__init__`` and ``irisgan/x/__init__`` first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    """Module -> the irisgan modules it imports, anywhere in its source: at the top, inside functions and
    under ``if TYPE_CHECKING``, absolute or relative; importing a module also imports its packages."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    module = ".".join([*base, node.module] if node.module else base)
                else:
                    module = node.module or ""
                # ``from pkg import mod`` imports the module ``pkg.mod``; ``from mod import func``, ``mod``
                imported = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for dotted in imported:
                if dotted == "irisgan" or dotted.startswith("irisgan."):
                    owner = _owner(dotted)
                    if owner:
                        targets.update([owner, *_ancestors(owner)])
        targets.discard(name)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_circles():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_the_cycle_finder_sees_function_local_and_type_checking_imports(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    # iris_locator imports the segmenter's inference API inside a method: the edge is seen
    assert "irisgan.extraction.iris_segmenter" in graph["irisgan.extraction.iris_locator"]
    assert "irisgan.extraction" in graph["irisgan.extraction.iris_locator"]  # and its package


def test_the_training_module_stays_apart_from_the_inference_api():
    """The extractor's segmenter API needs neither Lightning nor the training module."""
    graph = import_graph()
    api = graph["irisgan.extraction.iris_segmenter"]
    assert not any(m.startswith("irisgan.training") for m in api), api
    source = MODULES["irisgan.extraction.iris_segmenter"].read_text()
    assert "lightning" not in source


def test_the_top_level_stays_short():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 14, f"{len(top)} modules directly in irisgan/: {top}; put new ones in a subpackage"


def test_every_config_target_resolves():
    from hydra.utils import get_class, get_method

    targets = {}
    for path in sorted((ROOT / "conf").rglob("*.yaml")):
        for target in re.findall(r"_target_:\s*(irisgan\.[\w.]+)", path.read_text()):
            targets[target] = path
    assert targets
    missing = []
    for target, path in targets.items():
        try:
            get_class(target)
        except Exception:  # noqa: BLE001 - a function target, or a stale path
            try:
                get_method(target)
            except Exception as error:  # noqa: BLE001
                missing.append(f"{path.relative_to(ROOT)}: {target} ({type(error).__name__})")
    assert not missing, missing


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is Python 3.11+")
def test_the_wheel_declares_every_package_and_config():
    """pyproject.toml lists packages by hand (irisgan.conf is the top-level conf/): a new subpackage must be
    added there, or the wheel lacks it while the editable install still works."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(setuptools["packages"])
    subpackages = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert subpackages <= declared, (
        f"missing from [tool.setuptools] packages: {sorted(subpackages - declared)}"
    )
    assert setuptools["package-dir"] == {"irisgan.conf": "conf"}
    conf_globs = setuptools["package-data"]["irisgan.conf"]
    shipped = {p for g in conf_globs for p in (ROOT / "conf").glob(g) if p.is_file()}
    assert shipped == set((ROOT / "conf").rglob("*.yaml"))
    weights = {p for g in setuptools["package-data"]["irisgan"] for p in PACKAGE.glob(g)}
    assert weights == set((PACKAGE / "weights").glob("*.pt"))
    # include-package-data off: setuptools then takes data from package-data only, and does not warn about
    # each config folder being "absent from the packages configuration".
    assert setuptools["include-package-data"] is False
