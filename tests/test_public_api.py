"""The public surface is exactly what the docs list, and importing it is cheap."""

from __future__ import annotations

import json
import subprocess
import sys

import watchkeeper

DOCUMENTED = {
    "CBPE",
    "DLE",
    "Monitor",
    "MonitorConfig",
    "MonitorStore",
    "fairness_checks",
    "weak_segments",
    "CheckResult",
    "ColumnKind",
    "InputError",
    "MissingExtraError",
    "NotFittedError",
    "Profile",
    "QualityThresholds",
    "ReferenceChunksRule",
    "Report",
    "Role",
    "Schema",
    "SchemaError",
    "StatisticalRule",
    "Status",
    "TestResult",
    "ThresholdRule",
    "WatchkeeperError",
    "__version__",
    "compare",
    "read_table",
}


def test_all_is_exactly_the_documented_names() -> None:
    assert set(watchkeeper.__all__) == DOCUMENTED
    assert len(watchkeeper.__all__) == len(DOCUMENTED)


def test_every_public_name_resolves() -> None:
    for name in watchkeeper.__all__:
        assert getattr(watchkeeper, name) is not None


def test_import_is_light() -> None:
    code = "import sys, json, watchkeeper; print(json.dumps(sorted(m for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    heavy = {"pandas", "sklearn", "scipy", "pyarrow", "fastapi", "uvicorn", "polars", "typer",
             "sqlalchemy", "matplotlib", "shap"}  # fmt: skip
    assert not (heavy & loaded), f"import watchkeeper loaded {sorted(heavy & loaded)}"
