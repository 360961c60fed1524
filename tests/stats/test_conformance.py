"""Every registered method passes the conformance suite of ``watchkeeper.testing``."""

from __future__ import annotations

import pytest

from watchkeeper.stats import (
    available_methods,
    available_multivariate_methods,
    get_method,
    get_multivariate_method,
)
from watchkeeper.testing import check_drift_method, check_multivariate_method

CASES = [(k, n) for k in ("numeric", "categorical") for n in available_methods(k)]  # type: ignore[arg-type]


def test_the_issue_methods_are_all_registered() -> None:
    assert set(available_methods("numeric")) >= {  # type: ignore[arg-type]
        "ks", "cramer_von_mises", "anderson_darling", "wasserstein", "psi",
        "jensen_shannon", "hellinger", "energy",
    }  # fmt: skip
    assert set(available_methods("categorical")) >= {  # type: ignore[arg-type]
        "chi2", "g_test", "psi", "jensen_shannon", "hellinger", "l_infinity", "tvd",
    }  # fmt: skip
    assert set(available_multivariate_methods()) >= {
        "domain_classifier",
        "pca_reconstruction",
        "mmd",
    }


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_drift_method_conformance(kind: str, name: str) -> None:
    check_drift_method(get_method(name, kind))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", available_multivariate_methods())
def test_multivariate_conformance(name: str) -> None:
    method = get_multivariate_method(name)
    check_multivariate_method(method, effect_floor=float(getattr(method, "effect_floor", 0.0)))
