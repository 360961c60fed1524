"""Robustness: how the model behaves on broken, odd and unusually shaped input.

Each probe feeds the model a modified copy of real rows and classifies what happened: a valid
answer, a clean refusal (``ValueError`` or ``TypeError``, which a service can turn into a 4xx),
a crash (any other exception) or an invalid answer (wrong length, NaN, an unknown class,
probabilities that do not sum to one). The probe passes when the outcome matches its configured
expectation; crashes and invalid answers never pass. Probes whose answer must not depend on the
modification (shuffled columns, duplicated rows, a batch of one) also compare with the answer
on the unmodified rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle._common import record_warnings
from watchkeeper.lifecycle._config import RobustnessConfig
from watchkeeper.lifecycle._metrics import Task

__all__ = ["Outcome", "call_model", "robustness_checks"]

UNSEEN = "__watchkeeper_unseen__"
_CLEAN = (ValueError, TypeError)
_MAX_CASES = 20  # failing cases kept as evidence per probe


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened when the model was called.

    Parameters
    ----------
    kind
        ``"answer"``, ``"clean_error"``, ``"crash"`` or ``"invalid"``.
    label, proba
        The answer (``None`` unless ``kind == "answer"``).
    message
        Error or invalidity message.
    warnings
        Warnings the model raised.
    """

    kind: str
    label: NDArray[Any] | None = None
    proba: NDArray[np.float64] | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)


def _validate_output(model: Any, label: Any, proba: Any, n: int, task: Task) -> str:
    if label.shape[:1] != (n,):
        return f"predict returned shape {label.shape} for {n} rows"
    if task == "regression":
        if not np.all(np.isfinite(label.astype(float))):
            return "predict returned NaN or infinite values"
        return ""
    classes = getattr(model, "classes_", None)
    if classes is not None and not np.all(np.isin(label, classes)):
        return "predict returned labels that are not among classes_"
    if proba is not None:
        if proba.shape != (n, len(classes) if classes is not None else proba.shape[1]):
            return f"predict_proba returned shape {proba.shape} for {n} rows"
        if not np.all(np.isfinite(proba)) or proba.min() < 0 or proba.max() > 1:
            return "predict_proba returned values outside [0, 1] or NaN"
        if not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
            return "predict_proba rows do not sum to one"
    return ""


def call_model(model: Any, X: Any, task: Task) -> Outcome:
    """Call ``predict`` (and ``predict_proba`` for classifiers) and classify the outcome.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> m = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    >>> call_model(m, [[2.0]], "regression").kind
    'answer'
    >>> call_model(m, [["a"]], "regression").kind
    'clean_error'
    """
    with record_warnings() as seen:
        try:
            label = np.asarray(model.predict(X))
            proba = None
            if task != "regression" and hasattr(model, "predict_proba"):
                proba = np.asarray(model.predict_proba(X), dtype=float)
        except _CLEAN as exc:
            return Outcome("clean_error", message=f"{type(exc).__name__}: {exc}"[:300])
        except Exception as exc:
            return Outcome("crash", message=f"{type(exc).__name__}: {exc}"[:300])
    problem = _validate_output(model, label, proba, len(X), task)
    if problem:
        return Outcome("invalid", message=problem, warnings=seen)
    return Outcome("answer", label=label, proba=proba, warnings=seen)


def _same(a: Outcome, b: Outcome, task: Task, tol: float) -> bool:
    assert a.label is not None
    assert b.label is not None
    if task == "regression":
        return bool(np.allclose(a.label.astype(float), b.label.astype(float), rtol=tol, atol=tol))
    if not np.array_equal(a.label, b.label):
        return False
    if a.proba is not None and b.proba is not None:
        return bool(np.allclose(a.proba, b.proba, rtol=0, atol=tol))
    return True


def _judge(outcome: Outcome, expectation: str) -> str:
    """Empty string if the outcome is acceptable, else why not."""
    if outcome.kind in ("crash", "invalid"):
        return f"{outcome.kind}: {outcome.message}"
    if outcome.kind == "clean_error" and expectation == "answer":
        return f"refused although an answer is required: {outcome.message}"
    if outcome.kind == "answer" and expectation == "reject":
        return "answered although a clean refusal (ValueError/TypeError) is required"
    return ""


def _numeric(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]


def _categorical(frame: pd.DataFrame) -> list[str]:
    num = set(_numeric(frame))
    return [c for c in frame.columns if c not in num]


def _set(frame: pd.DataFrame, col: str, rows: slice, value: Any) -> pd.DataFrame:
    """Copy of ``frame`` with ``value`` written into some rows of ``col``.

    The column's dtype is widened only as far as needed, so that a missing value in an
    integer column stays numeric (float NaN) rather than turning into a wrong-type probe.
    """
    out = frame.copy()
    s = out[col].copy()
    missing = value is None or (isinstance(value, float) and np.isnan(value))
    if isinstance(s.dtype, pd.CategoricalDtype):
        if not missing and value not in s.cat.categories:
            s = s.cat.add_categories([value])
    elif pd.api.types.is_bool_dtype(s):
        s = s.astype(object)
    elif pd.api.types.is_integer_dtype(s) and (missing or isinstance(value, float)):
        s = s.astype(float)
    elif pd.api.types.is_numeric_dtype(s) and isinstance(value, str):
        s = s.astype(object)
    try:
        s.iloc[rows] = value
    except (TypeError, ValueError):
        s = s.astype(object)
        s.iloc[rows] = value
    out[col] = s
    return out


def _cases(base: pd.DataFrame, probe: str) -> list[tuple[str, pd.DataFrame]]:
    half = slice(0, max(1, len(base) // 2))
    rest = slice(max(1, len(base) // 2), len(base))
    cases: list[tuple[str, pd.DataFrame]] = []
    num, cat = _numeric(base), _categorical(base)
    if probe == "missing":
        for c in base.columns:
            cases.append((c, _set(base, c, half, np.nan if c in num else None)))
    elif probe in ("out_of_range", "extreme"):
        for c in num:
            lo, hi = float(base[c].min()), float(base[c].max())
            if probe == "out_of_range":
                span = (hi - lo) or 1.0
                above, below = hi + span, lo - span
            else:
                above, below = 1e30, -1e30
            frame = _set(_set(base.astype({c: float}), c, half, above), c, rest, below)
            cases.append((c, frame))
    elif probe == "unseen_category":
        cases.extend((c, _set(base, c, half, UNSEEN)) for c in cat)
    elif probe == "wrong_type":
        # Text in a numeric column. (A number in a categorical column is just an unseen
        # category, which its own probe covers.)
        cases.extend((c, _set(base, c, half, "not a number")) for c in num)
    return cases


def robustness_checks(
    model: Any,
    X: pd.DataFrame,
    *,
    task: Task,
    config: RobustnessConfig | None = None,
    random_state: int = 0,
) -> list[CheckResult]:
    """Run every edge-case probe and the stability measurement on rows sampled from ``X``.

    One ``gate.robustness`` result per probe (``alert`` when any case misses its expectation,
    with the failing cases in ``details``) and one ``gate.stability`` result.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = make_classification(300, 4, random_state=0)
    >>> X = pd.DataFrame(X, columns=list("abcd"))
    >>> m = LogisticRegression().fit(X, y)
    >>> res = robustness_checks(m, X, task="binary",
    ...                         config=RobustnessConfig(large_batch_rows=1000))
    >>> {r.subject: r.status.value for r in res}["wrong_type"]
    'ok'
    """
    cfg = config or RobustnessConfig()
    if not isinstance(X, pd.DataFrame):
        raise InputError("robustness probes need a pandas DataFrame with named columns")
    if len(X) < 2:
        raise InputError("robustness probes need at least two rows")
    rng = np.random.default_rng(random_state)
    take = rng.choice(len(X), size=min(cfg.n_rows, len(X)), replace=False)
    base = X.iloc[np.sort(take)].reset_index(drop=True)
    ref = call_model(model, base, task)
    if ref.kind != "answer":
        return [
            CheckResult(
                check="gate.robustness",
                subject="clean_rows",
                status=Status.ALERT,
                reason=f"the model does not answer on unmodified rows: {ref.message}",
            )
        ]
    out: list[CheckResult] = []
    for probe in ("missing", "out_of_range", "extreme", "unseen_category", "wrong_type"):
        cases = _cases(base, probe)
        if cases:
            out.append(_probe(model, probe, cases, cfg, task))
    out.append(_consistency(model, "shuffled_columns", base, ref, cfg, task, rng))
    out.append(_consistency(model, "duplicates", base, ref, cfg, task, rng))
    out.append(_consistency(model, "single_row", base, ref, cfg, task, rng))
    big = X.iloc[rng.integers(0, len(X), size=cfg.large_batch_rows)].reset_index(drop=True)
    out.append(_probe(model, "large_batch", [(f"{len(big):,} rows", big)], cfg, task))
    stability = _stability(model, base, ref, cfg, task, rng)
    if stability is not None:
        out.append(stability)
    return out


def _result(
    probe: str, cfg: RobustnessConfig, n: int, failures: list[dict[str, str]], seen: list[str]
) -> CheckResult:
    exp = cfg.expectation(probe)
    details: dict[str, Any] = {"expectation": exp, "cases": n, "failures": failures[:_MAX_CASES]}
    if seen:
        details["warnings"] = seen[:10]
    if failures:
        first = failures[0]
        reason = (
            f"{len(failures)} of {n} cases failed (expected: {exp}); e.g. "
            f"{first['case']}: {first['why']}"
        )
    else:
        reason = f"all {n} cases behaved as expected ({exp})"
    return CheckResult(
        check="gate.robustness",
        subject=probe,
        status=Status.ALERT if failures else Status.OK,
        reason=reason,
        value=float(len(failures)),
        threshold=0.0,
        rule=f"expectation '{exp}'; crashes and invalid answers always fail",
        details=details,
    )


def _probe(
    model: Any, probe: str, cases: list[tuple[str, pd.DataFrame]], cfg: RobustnessConfig, task: Task
) -> CheckResult:
    failures: list[dict[str, str]] = []
    seen: list[str] = []
    for name, frame in cases:
        outcome = call_model(model, frame, task)
        seen.extend(w for w in outcome.warnings if w not in seen)
        why = _judge(outcome, cfg.expectation(probe))
        if why:
            failures.append({"case": name, "outcome": outcome.kind, "why": why})
    return _result(probe, cfg, len(cases), failures, seen)


def _consistency(
    model: Any,
    probe: str,
    base: pd.DataFrame,
    ref: Outcome,
    cfg: RobustnessConfig,
    task: Task,
    rng: np.random.Generator,
) -> CheckResult:
    cases: list[tuple[str, pd.DataFrame, Callable[[Outcome], Outcome]]] = []
    if probe == "shuffled_columns":
        order = list(base.columns)
        perm = list(rng.permutation(order)) if len(order) > 1 else order
        if perm == order and len(order) > 1:
            perm = order[::-1]
        cases.append(("permuted columns", base[perm], lambda o: o))
    elif probe == "duplicates":
        doubled = pd.concat([base, base], ignore_index=True)
        n = len(base)

        def halves(o: Outcome) -> Outcome:
            assert o.label is not None
            first = Outcome("answer", o.label[:n], None if o.proba is None else o.proba[:n])
            second = Outcome("answer", o.label[n:], None if o.proba is None else o.proba[n:])
            return first if _same(first, second, task, cfg.tolerance) else Outcome("differs")

        cases.append(("every row twice", doubled, halves))
    else:
        for i in range(min(10, len(base))):
            cases.append((f"row {i} alone", base.iloc[[i]], lambda o: o))
    failures: list[dict[str, str]] = []
    seen: list[str] = []
    for name, frame, view in cases:
        outcome = call_model(model, frame, task)
        seen.extend(w for w in outcome.warnings if w not in seen)
        why = _judge(outcome, cfg.expectation(probe))
        if not why and outcome.kind == "answer":
            got = view(outcome)
            want = _slice(ref, name)
            if got.kind != "answer" or not _same(got, want, task, cfg.tolerance):
                why = "answered differently from the same rows in the unmodified batch"
        if why:
            failures.append({"case": name, "outcome": outcome.kind, "why": why})
    return _result(probe, cfg, len(cases), failures, seen)


def _slice(ref: Outcome, name: str) -> Outcome:
    if name.startswith("row "):
        i = int(name.split()[1])
        assert ref.label is not None
        return Outcome(
            "answer", ref.label[i : i + 1], None if ref.proba is None else ref.proba[i : i + 1]
        )
    return ref


def _stability(
    model: Any,
    base: pd.DataFrame,
    ref: Outcome,
    cfg: RobustnessConfig,
    task: Task,
    rng: np.random.Generator,
) -> CheckResult | None:
    num = [c for c in _numeric(base) if base[c].notna().all()]
    if not num or cfg.perturbation_scale == 0:
        return None
    noisy = base.copy()
    for c in num:
        col = base[c].astype(float)
        noisy[c] = col + rng.normal(0.0, cfg.perturbation_scale * float(col.std() or 1.0), len(col))
    got = call_model(model, noisy, task)
    if got.kind != "answer" or got.label is None or ref.label is None:
        return CheckResult(
            check="gate.stability",
            subject="perturbation",
            status=Status.ALERT,
            reason=f"the model failed on slightly perturbed rows: {got.message}",
        )
    rule_name = f"noise of {cfg.perturbation_scale:g} x std on {len(num)} numeric features"
    if task == "regression":
        scale = float(np.std(ref.label.astype(float))) or 1.0
        value = float(np.median(np.abs(got.label.astype(float) - ref.label.astype(float)))) / scale
        limit, what = cfg.max_relative_change, "median change / prediction std"
        details: dict[str, Any] = {}
    else:
        value = float(np.mean(got.label != ref.label))
        limit, what = cfg.max_flip_rate, "share of labels that flipped"
        details = {}
        if got.proba is not None and ref.proba is not None:
            details["mean_abs_proba_change"] = float(np.mean(np.abs(got.proba - ref.proba)))
    unstable = value > limit
    return CheckResult(
        check="gate.stability",
        subject="perturbation",
        status=Status.WARN if unstable else Status.OK,
        reason=f"{what} under {rule_name}: {value:.3g} ({'above' if unstable else 'within'} "
        f"{limit:g})",
        value=value,
        threshold=limit,
        rule=f"{what} > {limit:g} -> warn",
        details=details | {"rows": len(base), "features": num},
    )
