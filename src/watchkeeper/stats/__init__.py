"""Pure statistical functions on numpy arrays: two-sample tests and distances,
multiple-testing procedures, confidence sequences and sequential tests. No pandas, no I/O."""

from watchkeeper.stats._binning import DEFAULT_BINS, bin_counts, reference_bin_edges
from watchkeeper.stats._categorical import (
    chi2,
    g_test,
    hellinger_counts,
    jensen_shannon_counts,
    l_infinity,
    psi_counts,
    tvd,
)
from watchkeeper.stats._domain_classifier import domain_classifier
from watchkeeper.stats._intervals import wilson_interval
from watchkeeper.stats._metrics import (
    f1_from_counts,
    macro_f1,
    resampled_auc,
    roc_auc,
    weighted_roc_auc,
)
from watchkeeper.stats._mmd import mmd
from watchkeeper.stats._multitest import (
    Correction,
    MultipleTestResult,
    adjust_p_values,
    benjamini_hochberg,
    benjamini_yekutieli,
    bonferroni,
    holm,
)
from watchkeeper.stats._multivariate import (
    MultivariateMethod,
    available_multivariate_methods,
    get_multivariate_method,
    multivariate_method,
)
from watchkeeper.stats._numeric import (
    anderson_darling,
    cramer_von_mises,
    energy,
    hellinger,
    jensen_shannon,
    ks,
    psi,
    wasserstein,
)
from watchkeeper.stats._pca_reconstruction import pca_reconstruction
from watchkeeper.stats._presence import presence_test
from watchkeeper.stats._rates import conformal_exceedance, rate_increase
from watchkeeper.stats._registry import (
    DriftMethod,
    available_methods,
    drift_method,
    get_method,
)
from watchkeeper.stats._result import TestResult
from watchkeeper.stats._sequential import (
    ConfidenceSequence,
    SequentialVerdict,
    confidence_sequence,
    fixed_horizon_n,
    ipw_differences,
    msprt,
    paired_confidence_sequence,
    rho_for,
    sequential_verdict,
    two_sample_confidence_sequence,
)

__all__ = [
    "DEFAULT_BINS",
    "ConfidenceSequence",
    "Correction",
    "DriftMethod",
    "MultipleTestResult",
    "MultivariateMethod",
    "SequentialVerdict",
    "TestResult",
    "adjust_p_values",
    "anderson_darling",
    "available_methods",
    "available_multivariate_methods",
    "benjamini_hochberg",
    "benjamini_yekutieli",
    "bin_counts",
    "bonferroni",
    "chi2",
    "confidence_sequence",
    "conformal_exceedance",
    "cramer_von_mises",
    "domain_classifier",
    "drift_method",
    "energy",
    "f1_from_counts",
    "fixed_horizon_n",
    "g_test",
    "get_method",
    "get_multivariate_method",
    "hellinger",
    "hellinger_counts",
    "holm",
    "ipw_differences",
    "jensen_shannon",
    "jensen_shannon_counts",
    "ks",
    "l_infinity",
    "macro_f1",
    "mmd",
    "msprt",
    "multivariate_method",
    "paired_confidence_sequence",
    "pca_reconstruction",
    "presence_test",
    "psi",
    "psi_counts",
    "rate_increase",
    "reference_bin_edges",
    "resampled_auc",
    "rho_for",
    "roc_auc",
    "sequential_verdict",
    "tvd",
    "two_sample_confidence_sequence",
    "wasserstein",
    "weighted_roc_auc",
    "wilson_interval",
]
