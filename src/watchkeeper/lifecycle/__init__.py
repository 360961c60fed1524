"""Validation gates: the checks a model must pass before deployment.

:func:`validate` runs them all and returns a :class:`GateReport` (JSON, HTML and an exit code
for CI/CD: 0 pass, 1 fail, 2 error). Each check is also a pure function usable on its own.
Extra checks (fairness, in-house rules) plug in with :func:`gate_check`; importing this package
registers the ``fairness`` check (see :func:`mitigate` for the mitigations it can offer).
"""

from watchkeeper.lifecycle._calibration import calibration_check, expected_calibration_error
from watchkeeper.lifecycle._comparison import (
    PairedDifference,
    compare_models,
    mcnemar_test,
    paired_bootstrap,
)
from watchkeeper.lifecycle._config import (
    CalibrationConfig,
    ComparisonConfig,
    GateConfig,
    GeneralisationConfig,
    RobustnessConfig,
    ServingConfig,
)
from watchkeeper.lifecycle._explain_gate import explanations_gate
from watchkeeper.lifecycle._extra import (
    GateContext,
    available_gate_checks,
    gate_check,
    get_gate_check,
)
from watchkeeper.lifecycle._fairness import MitigatedModel, mitigate, tradeoff_table
from watchkeeper.lifecycle._gate import validate
from watchkeeper.lifecycle._generalisation import cross_validation_checks, learning_curve_check
from watchkeeper.lifecycle._iterations import early_stopping_check
from watchkeeper.lifecycle._metrics import Predictions, available_metrics, predict
from watchkeeper.lifecycle._model_card import ModelCard, model_card
from watchkeeper.lifecycle._regularisation import validation_curve_check
from watchkeeper.lifecycle._report import GateReport
from watchkeeper.lifecycle._robustness import robustness_checks
from watchkeeper.lifecycle._selection import validate_feature_drop
from watchkeeper.lifecycle._serving import serving_checks

__all__ = [
    "CalibrationConfig",
    "ComparisonConfig",
    "GateConfig",
    "GateContext",
    "GateReport",
    "GeneralisationConfig",
    "MitigatedModel",
    "ModelCard",
    "PairedDifference",
    "Predictions",
    "RobustnessConfig",
    "ServingConfig",
    "available_gate_checks",
    "available_metrics",
    "calibration_check",
    "compare_models",
    "cross_validation_checks",
    "early_stopping_check",
    "expected_calibration_error",
    "explanations_gate",
    "gate_check",
    "get_gate_check",
    "learning_curve_check",
    "mcnemar_test",
    "mitigate",
    "model_card",
    "paired_bootstrap",
    "predict",
    "robustness_checks",
    "serving_checks",
    "tradeoff_table",
    "validate",
    "validate_feature_drop",
    "validation_curve_check",
]
