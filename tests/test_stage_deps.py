"""Stages import no other stage, the library imports neither layer above it, and dvc.yaml lists the code each
stage imports (issue 13: a print edited in one stage module reran every stage that imported it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: plumbing every stage uses (error wrapper, params parsing, paths, atomic writes): not code deps
PLUMBING = {"pipeline.params", "pipeline.paths", "pipeline.artifacts", "pipeline.stage"}


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement of ``path`` (top level or inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _file(module: str) -> Path | None:
    p = ROOT / Path(*module.split("."))
    if p.with_suffix(".py").is_file():
        return p.with_suffix(".py")
    return p if (p / "__init__.py").is_file() else None


def _stage_deps() -> dict[str, list[str]]:
    """Stage module name → its dvc.yaml code deps (each foreach / matrix stage once)."""
    out: dict[str, list[str]] = {}
    for st in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values():
        st = st.get("do", st)
        m = re.search(r"stages\.(\w+)", st["cmd"])
        assert m, st["cmd"]
        out.setdefault(m.group(1), []).extend(d for d in st["deps"] if not d.startswith(("data/", "$")))
    return out


STAGES = sorted(p.stem for p in (ROOT / "stages").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_imports_another_stage(stage):
    others = {m for m in _imports(ROOT / "stages" / f"{stage}.py") if m.split(".")[0] == "stages"}
    assert not others, f"stages/{stage}.py imports {sorted(others)}: move the shared code to pipeline/"


#: the application layers above the library: the DAG glue, the stages, the CLI and the dev tools
APPLICATION_PACKAGES = ("pipeline", "stages", "cli", "tools")


def _dynamic_imports(path: Path) -> set[str]:
    """Modules named by a constant string in an ``importlib.import_module(...)`` / ``__import__(...)`` call."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                out.add(node.args[0].value)
    return out


def test_library_imports_no_application_layer():
    """``clip2point/`` is pure: no module of it, the CLI included, imports ``pipeline``, ``stages``, ``cli`` or
    ``tools``, at the top or inside a function (issue 20: the CLI was a package of the library that imported
    ``pipeline`` behind function-level imports)."""
    modules = sorted((ROOT / "clip2point").rglob("*.py"))
    assert len(modules) >= 20
    found = {}
    for path in modules:
        bad = {m for m in _imports(path) | _dynamic_imports(path) if m.split(".")[0] in APPLICATION_PACKAGES}
        if bad:
            found[str(path.relative_to(ROOT))] = sorted(bad)
    assert not found, f"the library imports an application layer: {found}"


def test_the_scan_sees_function_level_imports(tmp_path: Path) -> None:
    """The check above would catch an import hidden in a function, and one by name."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from pipeline.params import load_params\n    import importlib\n"
                 "    importlib.import_module('cli.settings')\n")
    assert "pipeline.params" in _imports(f) and "cli.settings" in _dynamic_imports(f)


@pytest.mark.parametrize("stage", sorted(_stage_deps()))
def test_dvc_deps_list_the_code_a_stage_imports(stage):
    deps = _stage_deps()[stage]
    assert f"stages/{stage}.py" in deps
    needed = set()
    for module in _imports(ROOT / "stages" / f"{stage}.py"):
        if module.split(".")[0] in ("pipeline", "clip2point") and "." in module and module not in PLUMBING:
            f = _file(module)  # a module file, or a package directory (``from clip2point.io import ...``)
            if f is not None:
                needed.add(str(f.relative_to(ROOT)))
    missing = [n for n in sorted(needed) if not any(n == d or n.startswith(d.rstrip("/") + "/") for d in deps)]
    assert not missing, f"dvc.yaml stage of stages/{stage}.py lacks deps {missing}"


def test_no_test_module_imports_another() -> None:
    """Shared fixtures live in ``conftest.py`` and ``tests/*_support.py``, not in other test modules (issue 20:
    importing a test module runs its fixtures' module twice and ties unrelated tests together)."""
    found = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        bad = {m for m in _imports(path) if m.split(".")[0].startswith("test_")}
        if bad:
            found[path.name] = sorted(bad)
    assert not found, f"test modules import other test modules: {found}"
