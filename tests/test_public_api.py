"""The public surface is exactly what the docs list, and importing it is cheap."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import watchkeeper

DOCUMENTED = {
    "CBPE",
    "DLE",
    "Monitor",
    "MonitorConfig",
    "MonitorStore",
    "check_fairness",
    "check_weak_segments",
    "CheckResult",
    "ColumnKind",
    "InputError",
    "MissingExtraError",
    "NotFittedError",
    "Profile",
    "QualityConfig",
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


RENAMED = [
    ("watchkeeper", "QualityThresholds", "QualityConfig"),
    ("watchkeeper", "fairness_checks", "check_fairness"),
    ("watchkeeper.checks", "quality_checks", "check_quality"),
    ("watchkeeper.checks", "skew_checks", "check_skew"),
    ("watchkeeper.checks", "fairness_checks", "check_fairness"),
    ("watchkeeper.checks", "profile_fairness_checks", "check_profile_fairness"),
    ("watchkeeper.checks", "fairness_from_counts", "check_fairness_counts"),
    ("watchkeeper.checks", "concept_drift_check", "check_concept_drift"),
    ("watchkeeper.checks", "concept_drift_checks", "check_concept_drift_detectors"),
    ("watchkeeper.checks", "flag_rate_check", "check_flag_rate"),
    ("watchkeeper.checks", "estimate_consistency", "check_estimate_consistency"),
    ("watchkeeper.checks", "realised_performance", "check_realised_performance"),
    ("watchkeeper.checks", "QualityThresholds", "QualityConfig"),
    ("watchkeeper.checks", "weak_segments", "check_weak_segments"),
    ("watchkeeper", "weak_segments", "check_weak_segments"),
    ("watchkeeper.gateway", "GatewaySettings", "GatewayConfig"),
    ("watchkeeper.loop", "Policy", "LoopConfig"),
    ("watchkeeper.loop", "GatePolicy", "LoopGateConfig"),
]


@pytest.mark.parametrize(("module", "old", "new"), RENAMED)
def test_old_names_still_work_with_a_warning_naming_the_new_one(
    module: str, old: str, new: str
) -> None:
    """One verb family (check functions are ``check_<what>``) and one suffix (``Config``):
    the names they replaced resolve to the same object for two minor releases, warning."""
    mod = importlib.import_module(module)
    with pytest.warns(FutureWarning, match=rf"{module}\.{old} is renamed {new};"):
        value = getattr(mod, old)
    assert value is getattr(mod, new)
    assert old not in mod.__all__
    assert new in mod.__all__
    with pytest.warns(FutureWarning):
        exec(f"from {module} import {old}", {})  # the from-import form warns too


def test_check_functions_form_one_verb_family() -> None:
    """Every public function of ``watchkeeper.checks`` returning check results is named
    ``check_<what>``."""
    import inspect

    import watchkeeper.checks as checks

    for name in checks.__all__:
        obj = getattr(checks, name)
        if not inspect.isfunction(obj):
            continue
        returns = str(inspect.signature(obj).return_annotation)
        if "CheckResult" in returns:
            assert name.startswith("check_"), (name, returns)


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
