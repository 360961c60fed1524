"""The public surface is exactly what the docs list, and importing it is cheap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def _modules_after(code: str) -> set[str]:
    code = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_compare_command_imports_no_scipy_stats_sklearn_or_pandas() -> None:
    """What `watchkeeper compare` imports before it runs stays light (scipy.stats alone takes
    about a second): checks resolve their names lazily, and no check module on the
    comparison path imports scipy.stats, sklearn or pandas at import time."""
    loaded = _modules_after(
        "import watchkeeper.checks, watchkeeper.cli, watchkeeper.cli._drift\n"
        "import watchkeeper.report._compare\n"
        "from watchkeeper.checks import CheckResult, ComparisonConfig, run_comparison\n"
        "from watchkeeper.data import Profile"
    )
    heavy = {"scipy.stats", "scipy.spatial", "scipy.optimize", "sklearn", "pandas", "fastapi"}
    assert not (heavy & loaded), f"the compare path imported {sorted(heavy & loaded)}"


def test_a_numeric_comparison_runs_without_scipy_stats_or_sklearn(tmp_path: Path) -> None:
    """The whole comparison of numeric Parquet data against a saved profile (KS, binned
    methods, multivariate PCA drift, quality) imports neither: only scipy.special. (pandas
    is imported by pyarrow itself, in ``Array.to_numpy``.)"""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    pq.write_table(
        pa.table({f"x{i}": rng.normal(size=30_000) for i in range(4)}), tmp_path / "r.pq"
    )
    pq.write_table(pa.table({f"x{i}": rng.normal(size=3_000) for i in range(4)}), tmp_path / "c.pq")
    loaded = _modules_after(
        "from watchkeeper.data import Profile\n"
        "from watchkeeper.checks import ComparisonConfig, run_comparison\n"
        f"Profile.from_data({str(tmp_path / 'r.pq')!r}).save({str(tmp_path / 'p.wkp')!r})\n"
        f"ref = Profile.load({str(tmp_path / 'p.wkp')!r})\n"
        f"result = run_comparison(ref, {str(tmp_path / 'c.pq')!r}, ComparisonConfig())\n"
        "assert len(result.columns) == 4, result\n"
        "assert result.multivariate is not None, result"
    )
    heavy = {"scipy.stats", "scipy.spatial", "scipy.optimize", "sklearn"}
    assert not (heavy & loaded), f"a numeric comparison imported {sorted(heavy & loaded)}"
