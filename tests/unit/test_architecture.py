"""Domain modules stay pure (no Dapr, web, Redis, HTTP imports); no toolkit import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cluster.config import ROOT

FORBIDDEN = (
    "dapr",
    "fastapi",
    "starlette",
    "redis",
    "httpx",
    "aiohttp",
    "uvicorn",
    "apps",
    "cluster",
)
PURE_TOOLKIT = (
    "domain.py",
    "errors.py",
    "ids.py",
    "envelope.py",
    "upcasting.py",
    "inbox.py",
    "eventlog.py",
)
DOMAIN_MODULES = sorted(
    [*ROOT.glob("actors/*/model.py"), *ROOT.glob("actors/order/saga.py")]
    + [ROOT / "actors" / "toolkit" / name for name in PURE_TOOLKIT]
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_domain_module_list_is_not_empty() -> None:
    assert len(DOMAIN_MODULES) >= 8


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_domain_module_imports_no_infrastructure(path: Path) -> None:
    assert _imports(path).isdisjoint(FORBIDDEN)


def _toolkit_imports(path: Path) -> set[str]:
    """The toolkit modules `path` imports, at run time or for type checking alike."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "actors.toolkit":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("actors.toolkit."):
            found.add(str(node.module).split(".")[2])
    return found


def test_the_toolkit_modules_import_each_other_without_a_cycle() -> None:
    toolkit = ROOT / "actors" / "toolkit"
    graph = {p.stem: _toolkit_imports(p) for p in toolkit.glob("*.py")}
    assert graph["actor"] >= {"audit", "eventlog", "outbox", "store"}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for imported in graph.get(module, set()):
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
