"""watchkeeper: keep machine-learning models healthy after deployment.

``import watchkeeper`` is cheap: the public names below are imported on first use, so a user
who wants one statistic does not pay for pandas, scikit-learn or a web server.

Examples
--------
>>> import watchkeeper as wk
>>> wk.StatisticalRule().alpha
0.05
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from watchkeeper import _extras
from watchkeeper._version import __version__
from watchkeeper.exceptions import (
    InputError,
    MissingExtraError,
    NotFittedError,
    SchemaError,
    WatchkeeperError,
)

if TYPE_CHECKING:
    from watchkeeper.checks import (
        CBPE,
        DLE,
        CheckResult,
        QualityConfig,
        ReferenceChunksRule,
        StatisticalRule,
        Status,
        ThresholdRule,
        check_fairness,
        check_weak_segments,
    )
    from watchkeeper.data import ColumnKind, Profile, Role, Schema, read_table
    from watchkeeper.monitor import Monitor, MonitorConfig, MonitorStore
    from watchkeeper.report import Report, compare
    from watchkeeper.stats import TestResult

# name -> module that defines it; resolved lazily by __getattr__.
_LAZY = {
    "compare": "watchkeeper.report",
    "Report": "watchkeeper.report",
    "Profile": "watchkeeper.data",
    "Schema": "watchkeeper.data",
    "ColumnKind": "watchkeeper.data",
    "Role": "watchkeeper.data",
    "read_table": "watchkeeper.data",
    "CheckResult": "watchkeeper.checks",
    "Status": "watchkeeper.checks",
    "StatisticalRule": "watchkeeper.checks",
    "ThresholdRule": "watchkeeper.checks",
    "ReferenceChunksRule": "watchkeeper.checks",
    "QualityConfig": "watchkeeper.checks",
    "TestResult": "watchkeeper.stats",
    "CBPE": "watchkeeper.checks",
    "DLE": "watchkeeper.checks",
    "check_fairness": "watchkeeper.checks",
    "check_weak_segments": "watchkeeper.checks",
    "Monitor": "watchkeeper.monitor",
    "MonitorConfig": "watchkeeper.monitor",
    "MonitorStore": "watchkeeper.monitor",
}

# HTML renderers for objects of lower layers (all markup lives in watchkeeper.report); the
# targets are imported only when something is rendered. See watchkeeper._extras.
for _kind, _target in (
    ("explanation_section", "watchkeeper.report._explain_html:explanation_section"),
    ("explanation_page", "watchkeeper.report._explain_html:explanation_page"),
    ("gate_report", "watchkeeper.report._gate_html:render_gate_report"),
    ("model_card", "watchkeeper.report._model_card_html:render_model_card"),
    # the application shell the gateway's create_app runs by default (dashboard, monitor)
    ("gateway.extension", "watchkeeper.app:install"),
):
    _extras.register(_kind, _target)
del _kind, _target

__all__ = [
    "CBPE",
    "DLE",
    "CheckResult",
    "ColumnKind",
    "InputError",
    "MissingExtraError",
    "Monitor",
    "MonitorConfig",
    "MonitorStore",
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
    "check_fairness",
    "check_weak_segments",
    "compare",
    "read_table",
]


#: Old public names -> new ones (see watchkeeper._extras.renamed).
_RENAMED = {
    "QualityThresholds": "QualityConfig",
    "fairness_checks": "check_fairness",
    "weak_segments": "check_weak_segments",
}


def __getattr__(name: str) -> Any:
    new = _RENAMED.get(name)
    if new is not None:
        from watchkeeper._extras import renamed

        return renamed(__name__, name, new, __getattr__(new))
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'watchkeeper' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
