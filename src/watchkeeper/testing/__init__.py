"""Conformance checks that every registered drift method must pass.

Third-party methods registered with ``@drift_method`` can run the same suite::

    from watchkeeper.testing import check_drift_method
    check_drift_method(get_method("my_method", "numeric"))
"""

from watchkeeper.testing._conformance import (
    check_detector,
    check_drift_method,
    check_multivariate_method,
)

__all__ = ["check_detector", "check_drift_method", "check_multivariate_method"]
