"""The layer contract of docs/architecture.md, held by reading every module's imports.

Each package may import only from packages on a lower layer (or its own), and never another
package's private (``_name``) modules. Imports inside functions count, and so do
``importlib.import_module("watchkeeper....")`` calls with a literal name: an import that only
runs later still ties the packages together.

Violations that remain are listed in ``ALLOWED`` below, each with the reason. The list is a
ratchet: a violation not on it fails the test, and so does a listed one that no longer occurs
(delete its line), so the list can only shrink.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "watchkeeper"

#: Layer of each top-level package or module of ``watchkeeper`` (docs/architecture.md).
#: A package imports only from layers below its own (and from itself).
LAYERS: dict[str, int] = {
    # 0: leaves every layer may use
    "_version": 0,
    "_extras": 0,
    "exceptions": 0,
    "datasets": 0,
    # 1: pure functions on numpy arrays
    "stats": 1,
    # 2: schema, input adapters, profiles
    "data": 2,
    # 3: the comparison engine and every check; explanations
    "checks": 3,
    "explain": 3,
    # 4: storage behind small protocols, and the SQL plumbing they share
    "storage": 4,
    "registry": 4,
    "logstore": 4,
    # 5: the serving core
    "gateway": 5,
    # 6: monitoring and validation gates
    "monitor": 6,
    "lifecycle": 6,
    # 7: policies acting on results
    "loop": 7,
    # 8: rendering, the command line and the application shell
    "report": 8,
    "_html": 8,
    "cli": 8,
    "app": 8,
    "integrations": 8,
    # 9: optional execution back-ends
    "engines": 9,
    # 10: entry points that may use everything
    "demo": 10,
    "testing": 10,
    "__init__": 10,
    "__main__": 10,
}

#: Violations still in the code, as "importing file -> imported module" (paths relative to
#: src/watchkeeper). Each must be fixed, not added to: see the module docstring.
#: Empty: every violation is fixed. Add nothing here; fix the import instead.
ALLOWED: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Violation:
    """One import that breaks the contract."""

    path: str  # relative to src/watchkeeper
    line: int
    target: str
    kind: str  # "upward" or "private"

    @property
    def key(self) -> str:
        return f"{self.path} -> {self.target}"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind} import of {self.target}"


def _package(rel: Path) -> str:
    return rel.parts[0].removesuffix(".py")


def _imported(node: ast.AST, base: list[str]) -> list[str]:
    """Absolute module names an AST node imports (empty for other nodes)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            anchor = base[: len(base) - (node.level - 1)]
            module = ".".join(anchor + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module == "watchkeeper":
            # ``from watchkeeper import stats`` imports the package; a name such as
            # ``__version__`` or ``compare`` comes from the top level.
            return [f"watchkeeper.{alias.name}" for alias in node.names]
        return [module]
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("import_module", "__import__") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                return [first.value]
    return []


def violations(source: str, rel: Path) -> list[Violation]:
    """The contract violations of one module ``rel`` (path under src/watchkeeper)."""
    package = _package(rel)
    own = LAYERS[package]
    parts = ["watchkeeper", *rel.with_suffix("").parts]
    # The package a relative import is resolved against (a package's __init__ is in it).
    base = parts[:-1]
    found = []
    for node in ast.walk(ast.parse(source, str(rel))):
        for module in _imported(node, base):
            names = module.split(".")
            if names[0] != "watchkeeper" or len(names) < 2:
                continue
            target = names[1]
            if target == package:
                continue
            # A name taken from the top-level package counts as the top level itself.
            layer = LAYERS.get(target, LAYERS["__init__"])
            if target == "__version__":
                layer = LAYERS["_version"]
            if layer > own:
                found.append(Violation(str(rel), node.lineno, module, "upward"))
            if len(names) > 2 and names[2].startswith("_") and not names[2].startswith("__"):
                found.append(Violation(str(rel), node.lineno, module, "private"))
    return found


def all_violations() -> list[Violation]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        found.extend(violations(path.read_text(encoding="utf-8"), rel))
    return found


def test_every_package_has_a_layer() -> None:
    packages = {_package(p.relative_to(SRC)) for p in SRC.rglob("*.py")}
    missing = sorted(packages - LAYERS.keys())
    assert not missing, f"give these packages a layer in LAYERS and docs/architecture.md: {missing}"


def test_layers_hold() -> None:
    found = all_violations()
    new = sorted(str(v) for v in found if v.key not in ALLOWED)
    assert not new, "imports against the layers (see docs/architecture.md):\n" + "\n".join(new)


def test_allow_list_is_tight() -> None:
    keys = {v.key for v in all_violations()}
    gone = sorted(ALLOWED - keys)
    assert not gone, f"these no longer occur; delete them from ALLOWED: {gone}"


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        # an upward import at module level
        ("stats/_x.py", "from watchkeeper.data import Profile\n", ["upward"]),
        # an upward import hidden inside a function
        ("gateway/_x.py", "def f():\n    from watchkeeper.monitor import Monitor\n", ["upward"]),
        # an importlib string
        (
            "gateway/_x.py",
            "import importlib\nm = importlib.import_module('watchkeeper.report')\n",
            ["upward"],
        ),
        # another package's private module, even below
        ("monitor/_x.py", "from watchkeeper.registry._engine import safe_url\n", ["private"]),
        # a relative import that climbs out of the package into a private module above
        ("checks/_x.py", "from ..report._html import page\n", ["upward", "private"]),
        # allowed: own package's private modules, lower packages' public names
        ("checks/_x.py", "from watchkeeper.checks._result import Status\n", []),
        ("monitor/_x.py", "from watchkeeper.storage import as_utc\nimport numpy\n", []),
        ("stats/_x.py", "from watchkeeper import __version__\n", []),
        ("cli/_x.py", "import watchkeeper.report\n", []),
    ],
)
def test_the_scanner_catches_violations(rel: str, source: str, expected: list[str]) -> None:
    assert sorted(v.kind for v in violations(source, Path(rel))) == sorted(expected)


DOC = SRC.parents[1] / "docs" / "architecture.md"


def test_the_documented_layers_are_the_tested_ones() -> None:
    documented: dict[str, int] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            for name in re.findall(r"`([\w.]+)`", cells[1]):
                documented[name] = int(cells[0])
    documented["__init__"] = documented.pop("watchkeeper")
    assert documented == {k: v for k, v in LAYERS.items() if k != "__main__"}


def test_the_documented_example_prints_what_the_text_says() -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```\n\nprints `([^`]*)`", text, re.S)
    assert blocks, "docs/architecture.md has no python example followed by 'prints'"
    for code, printed in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(DOC), "exec"), {})
        assert out.getvalue().strip() == printed
