"""Interop with the tools around watchkeeper.

:mod:`watchkeeper.integrations.mlflow` logs gate and drift reports to MLflow runs. Importing
this package is cheap: each integration imports its third-party package on first use and
names the extra to install when it is missing.
"""

from __future__ import annotations

from watchkeeper.integrations.mlflow import log_drift_report, log_gate_report

__all__ = ["log_drift_report", "log_gate_report"]
