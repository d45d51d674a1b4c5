"""Data flows one way and no module imports a layer above it, checked on the source.

Layers, bottom up: the core (value types, config, metrics, the runtime stages sources ->
detect -> classify -> track -> policy -> publish, the pipeline that joins them, ops
helpers), then the web server and its pages, then the app layer (``edge_daemon/app/``:
the daemon object, wiring, reload plan, CLI; and ``__main__``). The
measuring tools (``edge_bench``) and the trainer sit beside the runtime and may import
it; the runtime never imports either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "edge_daemon"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module named by an import statement, at any depth (lazy imports count)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def layer(module: str) -> int:
    if module in ("edge_daemon.app", "edge_daemon.__main__") or module.startswith(
        "edge_daemon.app."
    ):
        return 2
    if module == "edge_daemon.web" or module.startswith("edge_daemon.web."):
        return 1
    return 0


MODULES = sorted(module_name(p) for p in PKG.rglob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_a_layer_above_it(module: str) -> None:
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    above = sorted(
        m
        for m in imports(path)
        if m.startswith("edge_daemon") and layer(m) > layer(module) and m in MODULES
    )
    assert not above, f"{module} (layer {layer(module)}) imports {above}"


@pytest.mark.parametrize("module", MODULES)
def test_the_runtime_never_imports_the_tools_or_the_trainer(module: str) -> None:
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    tools = {m for m in imports(path) if m.split(".")[0] in ("trainer", "edge_bench")}
    assert not tools, f"{module} imports {sorted(tools)}"


def test_the_checker_sees_what_it_must_refuse() -> None:
    # The rule holds today; prove the check would catch a violation.
    src = "from edge_daemon.web.live import LiveSlot\nimport edge_daemon.app\n"
    tmp = ast.parse(src)
    names = {n.module for n in ast.walk(tmp) if isinstance(n, ast.ImportFrom)}
    names |= {a.name for n in ast.walk(tmp) if isinstance(n, ast.Import) for a in n.names}
    assert {layer(m) for m in names} == {1, 2} and layer("edge_daemon.pipeline") == 0
