"""The layers contract of the library (docs/design.md, "Layers"): every import points down.

A module of ``src/uqroute`` imports only from its own component or a lower layer (imports inside
functions included, relative imports resolved), reaches another component only through its
public face (the package's ``__init__``), and never imports a cross-package underscore name (a
private module or a private name of another component). Read from the source with ``ast``, so
an import that Python defers to call time counts as much as one at the top of a file.

The start-up checks (``uqroute.preflight``) import no scikit-learn, torch or transformers, so a
dry run starts fast (checked in a fresh interpreter).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "uqroute"

#: The layer of each component (a top-level module or subpackage of uqroute); a module may import
#: its own component and any lower layer.
LAYERS = {
    # L0: the artifact schema, the config, file I/O, answer parsing
    "schema": 0,
    "settings": 0,
    "io": 0,
    "parsing": 0,
    # L1: datasets, models, UQ methods; revision locks (they name model sources, uqroute.models)
    "data": 1,
    "models": 1,
    "uq": 1,
    "revisions": 1,
    # L2: inference
    "inference": 2,
    # L3: the judge, probes, routing evaluation
    "judge": 3,
    "probes": 3,
    "routing": 3,
    # L4: deployable routers, the start-up checks, the command line, results, findings, figures
    "router": 4,
    "preflight": 4,
    "cli": 4,
    "results": 4,
    "findings": 4,
    "figures": 4,
}

#: Imports that break the contract today and that only the router engineer's change removes (the
#: query plan in inference, EngineWorker moved into inference, router/'s reach into other stages'
#: modules). Each is (importing module, imported module or name). The coordinator empties this
#: list after merging; nothing else may be added here.
ALLOWED: set[tuple[str, str]] = set()  # no exception: every stage is reached through its package's __init__


def _modules():
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        yield ".".join(parts), is_pkg, path


def _component(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == PACKAGE else None


def _is_package(module: str) -> bool:
    return (SRC / Path(*module.split(".")) / "__init__.py").is_file()


def imports(module: str, is_pkg: bool, path: Path):
    """(line, imported module, imported name or None) for every import of ``uqroute`` in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if is_pkg else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if _is_package(target) and (
                    _is_package(sub) or (SRC / Path(*sub.split("."))).with_suffix(".py").is_file()
                ):
                    yield node.lineno, sub, None  # `from . import routing`: the submodule itself
                else:
                    yield node.lineno, target, alias.name


def violations() -> list[str]:
    found = []
    for module, is_pkg, path in _modules():
        here = _component(module)
        if here is None:
            continue  # uqroute/__init__.py
        assert here in LAYERS, f"{module}: component {here!r} has no layer in tests/test_layers.py LAYERS"
        for line, target, name in imports(module, is_pkg, path):
            there = _component(target)
            where = f"{path.relative_to(ROOT)}:{line} ({module})"
            shown = f"{target}{'.' + name if name else ''}"
            if there is None or there == here:
                continue
            assert there in LAYERS, f"{where}: imports {shown}, whose component {there!r} has no layer"
            if (module, shown) in ALLOWED:
                continue
            if LAYERS[there] > LAYERS[here]:
                found.append(
                    f"{where}: imports {shown}, an upward import (L{LAYERS[here]} {here} -> L{LAYERS[there]} {there})"
                )
            private = [p for p in target.split(".")[2:] if p.startswith("_") and not p.startswith("__")]
            if name and name.startswith("_") and not name.startswith("__"):
                private.append(name)
            if private:
                found.append(f"{where}: imports {shown}, a private name ({', '.join(private)}) of another component")
            elif len(target.split(".")) > 2:
                found.append(
                    f"{where}: imports {shown}, a module inside {PACKAGE}.{there}; use the package's public face "
                    f"({PACKAGE}.{there}.__init__)"
                )
    return found


def test_every_import_points_down_and_reaches_no_private_name():
    found = violations()
    assert not found, "the layers contract is broken:\n" + "\n".join(found)


def test_the_allow_list_holds_only_what_still_happens():
    """An entry of ALLOWED that no longer matches an import must go (the list only shrinks)."""
    seen = {(m, f"{t}{'.' + n if n else ''}") for m, pkg, p in _modules() for _, t, n in imports(m, pkg, p)}
    stale = sorted(ALLOWED - seen)
    assert not stale, f"ALLOWED entries that match no import any more (remove them): {stale}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ..router import Router\n", "an upward import (L1 data -> L4 router)"),
        ("def f():\n    from uqroute.inference import run_inference\n", "an upward import (L1 data -> L2 inference)"),
        ("from ..models.sources import _private\n", "a private name (_private) of another component"),
        ("from ..parsing import _common\n", "a private name (_common) of another component"),
        ("from .. import preflight\n", "an upward import (L1 data -> L4 preflight)"),
        ("from ..uq.registry import METHODS\n", "a module inside uqroute.uq; use the package's public face"),
    ],
    ids=[
        "relative",
        "inside-a-function",
        "private-name",
        "private-module",
        "from-package-import-module",
        "past-the-init",
    ],
)
def test_the_contract_catches(tmp_path, monkeypatch, source, expected):
    """The checker itself: a planted bad import in uqroute.data is found and named with its file and line."""
    src = tmp_path / "src"
    pkg = src / PACKAGE
    for _module, _pkg, path in _modules():
        target = src / path.relative_to(SRC)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    (pkg / "data" / "planted.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "SRC", src)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = [v for v in violations() if "planted" in v]
    assert len(found) == 1 and expected in found[0] and "src/uqroute/data/planted.py:" in found[0], found


def _workflow_imports() -> list[str]:
    """Every ``uqroute`` import of the Snakefile and the rule files (run when Snakemake builds the DAG)."""
    lines = []
    for path in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        for line in path.read_text().splitlines():
            m = re.match(r"^\s*((?:from uqroute[\w.]* import [\w, ]+)|(?:import uqroute[\w.]*))\s*(?:#.*)?$", line)
            if m and m.group(1) not in lines:
                lines.append(m.group(1))
    return lines


def test_the_start_up_checks_import_no_heavy_library():
    """Validating and checking the paper's config, and every uqroute import the workflow makes while
    it builds the DAG, import no scikit-learn, SciPy, torch, transformers, matplotlib or seaborn."""
    imports = _workflow_imports()
    assert any("preflight" in line for line in imports) and any("uqroute.figures" in line for line in imports), imports
    code = (
        "import sys\n"
        "from uqroute import preflight, settings\n"
        "config = settings.validate(settings.load_yaml('config/paper.yaml'))\n"
        "assert preflight.problems(config) == [], preflight.problems(config)\n"
        + "".join(f"{line}\n" for line in imports)
        + "heavy = ('sklearn', 'scipy', 'torch', 'transformers', 'matplotlib', 'seaborn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", f"the start-up imported {proc.stdout.strip()}"
