"""Pure statistical functions on numpy arrays: two-sample tests and distances,
multiple-testing procedures. No pandas, no I/O."""

from watchkeeper.stats._binning import DEFAULT_BINS, bin_counts, reference_bin_edges
from watchkeeper.stats._registry import (
    DriftMethod,
    available_methods,
    drift_method,
    get_method,
)
from watchkeeper.stats._result import TestResult

__all__ = [
    "DEFAULT_BINS",
    "DriftMethod",
    "TestResult",
    "available_methods",
    "bin_counts",
    "drift_method",
    "get_method",
    "reference_bin_edges",
]
