"""Who may import whom, checked on every module of actors/, apps/ and readmodels/.

Every import counts: module level, inside functions, under `if TYPE_CHECKING:`, relative
(resolved to its absolute name) and `importlib.import_module("...")` with a literal name.
    pure modules (actors/*/model.py, saga, the pure toolkit,     no I/O, web, Dapr, apps
        the read-model rows and keys, the projections and the
        projector's batch fold)
    apps/<x>/                                                   no apps.<y> for y != x
    actors/                                                     no apps
    readmodels/                                                 no apps
    actors/toolkit/                                             no import cycle
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import pytest

from cluster.config import ROOT

GUARDED: Final = ("actors", "apps", "readmodels")
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
# The toolkit modules that are pure (the rest of the toolkit does I/O by design).
PURE_TOOLKIT = (
    "domain.py",
    "errors.py",
    "ids.py",
    "envelope.py",
    "upcasting.py",
    "inbox.py",
    "eventlog.py",
    "streams.py",
)
DOMAIN_MODULES = sorted(
    [*ROOT.glob("actors/*/model.py"), *ROOT.glob("actors/order/saga.py")]
    + [ROOT / "actors" / "toolkit" / name for name in PURE_TOOLKIT]
    + [ROOT / "readmodels" / "keys.py", ROOT / "readmodels" / "rows.py"]
    + [ROOT / "apps" / "projector" / name for name in ("projections.py", "batch.py")]
)
# (importing module, imported module) pairs that break a rule on purpose, each with its
# reason.
ALLOWED: Final[dict[tuple[str, str], str]] = {
    ("apps.projector.batch", "apps.projector.projections"): "a delivery's batch folds with "
    "the projections; both pure, both the projector's own",
}


def _modules() -> list[Path]:
    """Every Python module of the guarded packages (discovered, never listed)."""
    return sorted(path for top in GUARDED for path in (ROOT / top).rglob("*.py"))


def _name_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name a (possibly relative) `from ... import` reads from."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(source: str, *, module: str = "", is_package: bool = False) -> set[str]:
    """Every module name `source` imports, wherever the import statement sits."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            origin = _resolve(node, module, is_package)
            found.add(origin)
            found |= {f"{origin}.{alias.name}" for alias in node.names if alias.name != "*"}
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            found.add(node.args[0].value)  # type: ignore[attr-defined]
    return found


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return (
        name in ("import_module", "__import__")
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def _imports(path: Path) -> set[str]:
    return imports_of(
        path.read_text(), module=_name_of(path), is_package=path.name == "__init__.py"
    )


def _top(name: str) -> str:
    return name.split(".")[0]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(path: Path, packages: tuple[str, ...]) -> list[str]:
    """The imports of `path` inside any of `packages`, minus the allowed ones."""
    module = _name_of(path)
    return sorted(
        name
        for name in _imports(path)
        if any(_within(name, p) for p in packages) and (module, name) not in ALLOWED
    )


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- the walker itself -------------------------------------------------------------------------


def test_every_module_of_the_guarded_packages_is_found() -> None:
    found = {_name_of(path) for path in _modules()}
    assert {"apps.gateway.routes.queries", "actors.toolkit.store", "readmodels.queries"} <= found


def test_imports_inside_functions_relative_and_dynamic_ones_are_seen() -> None:
    source = (
        "from . import sibling\n"
        "from ..other import thing\n"
        "def later():\n"
        "    import apps.shipping.main\n"
        "    if True:\n"
        "        from apps.projector import store\n"
        "    importlib.import_module('apps.gateway.deps')\n"
    )
    found = imports_of(source, module="apps.gateway.routes.orders")
    assert {
        "apps.gateway.routes.sibling",
        "apps.gateway.other.thing",
        "apps.shipping.main",
        "apps.projector.store",
        "apps.gateway.deps",
    } <= found


def test_every_allow_list_entry_is_still_needed() -> None:
    for module, imported in ALLOWED:
        path = next(p for p in _modules() if _name_of(p) == module)
        assert imported in _imports(path), f"stale allow-list entry: {module} -> {imported}"


# --- the rules -------------------------------------------------------------------------------


def test_the_domain_module_list_is_not_empty_and_every_listed_module_exists() -> None:
    assert len(DOMAIN_MODULES) >= 10
    assert all(path.exists() for path in DOMAIN_MODULES)


@pytest.mark.parametrize("path", DOMAIN_MODULES, ids=_ids)
def test_domain_module_imports_no_infrastructure(path: Path) -> None:
    module = _name_of(path)
    allowed = [target for (source, target) in ALLOWED if source == module]
    imported = {n for n in _imports(path) if not any(_within(n, a) for a in allowed)}
    assert {_top(name) for name in imported}.isdisjoint(FORBIDDEN)


@pytest.mark.parametrize("path", sorted((ROOT / "apps").rglob("*.py")), ids=_ids)
def test_no_app_imports_another_app(path: Path) -> None:
    parts = path.relative_to(ROOT).parts
    if len(parts) < 3:  # apps/__init__.py belongs to no app
        assert _violations(path, ("apps",)) == []
        return
    others = tuple(
        f"apps.{d.name}" for d in (ROOT / "apps").iterdir() if d.is_dir() and d.name != parts[1]
    )
    assert _violations(path, others) == []


@pytest.mark.parametrize("path", sorted((ROOT / "actors").rglob("*.py")), ids=_ids)
def test_actors_import_no_app(path: Path) -> None:
    assert _violations(path, ("apps",)) == []


@pytest.mark.parametrize("path", sorted((ROOT / "readmodels").rglob("*.py")), ids=_ids)
def test_the_read_models_import_no_app(path: Path) -> None:
    assert _violations(path, ("apps",)) == []


def _toolkit_imports(path: Path) -> set[str]:
    """The toolkit modules `path` imports, at run time or for type checking alike."""
    found: set[str] = set()
    for name in _imports(path):
        parts = name.split(".")
        if parts[:2] == ["actors", "toolkit"] and len(parts) >= 3:
            found.add(parts[2])
    return found - {path.stem}


def test_the_toolkit_modules_import_each_other_without_a_cycle() -> None:
    toolkit = ROOT / "actors" / "toolkit"
    modules = {p.stem for p in toolkit.glob("*.py")}
    graph = {p.stem: _toolkit_imports(p) & modules for p in toolkit.glob("*.py")}
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
