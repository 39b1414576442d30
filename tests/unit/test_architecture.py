"""Domain modules stay pure: no Dapr, web, Redis or HTTP client imports."""

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
PURE_TOOLKIT = ("domain.py", "errors.py", "ids.py", "envelope.py", "upcasting.py", "inbox.py")
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
