"""Robustness probes: well-behaved models pass; each kind of misbehaviour is caught."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from watchkeeper.checks import Status
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle import RobustnessConfig, robustness_checks
from watchkeeper.lifecycle._robustness import call_model

CFG = RobustnessConfig(large_batch_rows=1_000, n_rows=40)


def _by_subject(results: list[Any]) -> dict[str, Any]:
    return {r.subject: r for r in results}


def _pipeline(handle_unknown: str = "ignore") -> Any:
    pre = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
        (
            make_pipeline(
                SimpleImputer(strategy="most_frequent"),
                OneHotEncoder(handle_unknown=handle_unknown),
            ),
            ["city"],
        ),
    )
    return make_pipeline(pre, LogisticRegression())


def test_well_behaved_pipeline_passes_every_probe(mixed_frame: pd.DataFrame) -> None:
    X, y = mixed_frame.drop(columns="y"), mixed_frame["y"]
    res = _by_subject(robustness_checks(_pipeline().fit(X, y), X, task="binary", config=CFG))
    expected = {
        "missing", "out_of_range", "extreme", "unseen_category", "wrong_type",
        "shuffled_columns", "duplicates", "single_row", "large_batch", "perturbation",
    }  # fmt: skip
    assert set(res) == expected
    bad = {k: r.reason for k, r in res.items() if r.status is not Status.OK}
    assert not bad
    assert res["missing"].details["cases"] == 3  # one per column
    assert res["unseen_category"].details["cases"] == 1  # only city is categorical


def test_unseen_category_expectations(mixed_frame: pd.DataFrame) -> None:
    X, y = mixed_frame.drop(columns="y"), mixed_frame["y"]
    strict = _pipeline(handle_unknown="error").fit(X, y)  # refuses with a ValueError
    either = _by_subject(robustness_checks(strict, X, task="binary", config=CFG))
    assert either["unseen_category"].status is Status.OK
    must_answer = RobustnessConfig(large_batch_rows=1_000, n_rows=40, unseen_category="answer")
    res = _by_subject(robustness_checks(strict, X, task="binary", config=must_answer))
    r = res["unseen_category"]
    assert r.status is Status.ALERT
    assert r.details["failures"][0]["outcome"] == "clean_error"
    assert "refused" in r.reason


class _Lenient:
    """Coerces anything to numbers and fills the holes: answers on garbage."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.classes_ = inner.classes_

    def _clean(self, X: pd.DataFrame) -> pd.DataFrame:
        return X.apply(pd.to_numeric, errors="coerce").fillna(0.0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.inner.predict(self._clean(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.inner.predict_proba(self._clean(X))


def test_silently_accepting_wrong_types_fails_reject(clf_frame: pd.DataFrame) -> None:
    X, y = clf_frame.drop(columns="y"), clf_frame["y"]
    model = _Lenient(LogisticRegression().fit(X, y))
    res = _by_subject(robustness_checks(model, X, task="binary", config=CFG))
    assert res["wrong_type"].status is Status.ALERT
    assert "answered although" in res["wrong_type"].reason
    lenient_ok = RobustnessConfig(large_batch_rows=1_000, n_rows=40, wrong_type="either")
    res = _by_subject(robustness_checks(model, X, task="binary", config=lenient_ok))
    assert res["wrong_type"].status is Status.OK


class _Positional:
    """Ignores column names: a shuffled frame silently gets wrong answers."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.inner.predict(np.asarray(X, dtype=float))


def test_ignoring_column_names_is_caught(reg_frame: pd.DataFrame) -> None:
    X, y = reg_frame.drop(columns="y"), reg_frame["y"]
    model = _Positional(LinearRegression().fit(X.to_numpy(), y))
    res = _by_subject(robustness_checks(model, X, task="regression", config=CFG))
    r = res["shuffled_columns"]
    assert r.status is Status.ALERT
    assert "differently" in r.reason
    # scikit-learn itself refuses reordered columns cleanly, which "either" accepts
    sk = LinearRegression().fit(X, y)
    assert (
        _by_subject(robustness_checks(sk, X, task="regression", config=CFG))[
            "shuffled_columns"
        ].status
        is Status.OK
    )


class _BatchNormalised:
    """Standardises each batch by its own mean: a row's answer depends on its neighbours."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        Z = (X - X.mean()) / X.std().fillna(1.0).replace(0.0, 1.0)
        return self.inner.predict(Z.fillna(0.0).to_numpy())


def test_batch_dependent_answers_fail_single_row(reg_frame: pd.DataFrame) -> None:
    X, y = reg_frame.drop(columns="y"), reg_frame["y"]
    model = _BatchNormalised(LinearRegression().fit(X.to_numpy(), y))
    res = _by_subject(robustness_checks(model, X, task="regression", config=CFG))
    assert res["single_row"].status is Status.ALERT
    assert res["single_row"].details["failures"][0]["outcome"] == "answer"


class _Careless:
    """Returns NaN for rows with missing values and crashes on huge batches."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner, self.limit = inner, limit

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if len(X) > self.limit:
            raise IndexError("buffer overflow")
        out = self.inner.predict(X.fillna(0.0)).astype(float)
        out[X.isna().any(axis=1).to_numpy()] = np.nan
        return out


def test_nan_answers_and_crashes_always_fail(reg_frame: pd.DataFrame) -> None:
    X, y = reg_frame.drop(columns="y"), reg_frame["y"]
    model = _Careless(LinearRegression().fit(X, y), limit=500)
    res = _by_subject(robustness_checks(model, X, task="regression", config=CFG))
    assert res["missing"].status is Status.ALERT
    assert res["missing"].details["failures"][0]["outcome"] == "invalid"
    assert res["large_batch"].status is Status.ALERT
    assert res["large_batch"].details["failures"][0]["outcome"] == "crash"
    assert res["out_of_range"].status is Status.OK


class _Jittery:
    """Label flips with the last digits of the input: wildly unstable."""

    classes_ = np.array([0, 1])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (np.floor(np.asarray(X, float)[:, 0] * 1e4) % 2).astype(int)


def test_stability_under_small_perturbations(clf_frame: pd.DataFrame) -> None:
    X, y = clf_frame.drop(columns="y"), clf_frame["y"]
    jumpy = _by_subject(robustness_checks(_Jittery(), X, task="binary", config=CFG))
    assert jumpy["perturbation"].status is Status.WARN
    assert jumpy["perturbation"].value is not None
    assert jumpy["perturbation"].value > 0.3  # about half the labels flip
    calm = _by_subject(
        robustness_checks(LogisticRegression().fit(X, y), X, task="binary", config=CFG)
    )
    assert calm["perturbation"].status is Status.OK
    assert calm["perturbation"].value is not None
    assert calm["perturbation"].value < 0.05


def test_invalid_outputs_are_recognised() -> None:
    class Bad:
        classes_ = np.array([0, 1])

        def predict(self, X: Any) -> np.ndarray:
            return np.array([0, 1, 2])[: len(X)]

        def predict_proba(self, X: Any) -> np.ndarray:
            return np.full((len(X), 2), 0.7)

    out = call_model(Bad(), pd.DataFrame({"a": [1.0, 2.0]}), "binary")
    assert out.kind == "invalid"
    assert "sum to one" in out.message
    out = call_model(Bad(), pd.DataFrame({"a": [1.0, 2.0, 3.0]}), "binary")
    assert out.kind == "invalid"
    assert "classes_" in out.message


def test_models_that_cannot_answer_clean_rows(clf_frame: pd.DataFrame) -> None:
    class Broken:
        def predict(self, X: Any) -> np.ndarray:
            raise RuntimeError("model file corrupt")

    (r,) = robustness_checks(Broken(), clf_frame.drop(columns="y"), task="binary", config=CFG)
    assert r.status is Status.ALERT
    assert "unmodified rows" in r.reason
    with pytest.raises(InputError, match="DataFrame"):
        robustness_checks(Broken(), np.zeros((5, 2)), task="binary")  # type: ignore[arg-type]


def test_input_is_not_modified(mixed_frame: pd.DataFrame) -> None:
    X, y = mixed_frame.drop(columns="y"), mixed_frame["y"]
    before = X.copy()
    robustness_checks(_pipeline().fit(X, y), X, task="binary", config=CFG)
    pd.testing.assert_frame_equal(X, before)
