"""The conformance suite: properties every drift method must have, whatever it computes.

- deterministic: the same inputs give the same result (seeded randomness only);
- pure: inputs are not mutated;
- serializable: ``result.to_dict()`` is strict JSON;
- sane: identical samples give no evidence of drift and a zero-ish effect, a large shift gives
  strong evidence and a large effect; effect sizes do not grow with the sample size alone;
- documented: a docstring with an ``Examples`` section (run as a doctest by the test suite).

Concept-drift detectors (:func:`check_detector`) must be deterministic, leave their input alone,
restart cleanly on ``reset()``, round-trip their state through JSON without changing a single
later decision, and catch a large abrupt rise of the error rate.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.stats import DriftMethod, TestResult

__all__ = ["check_detector", "check_drift_method", "check_multivariate_method"]


def _numeric_pair(
    seed: int, n: int, shift: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n), rng.standard_normal(n) + shift


def _count_pair(seed: int, n: int, shift: float) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    p = np.array([0.4, 0.3, 0.2, 0.1])
    q = (1 - shift) * p + shift * p[::-1]
    return rng.multinomial(n, p), rng.multinomial(n, q)


def _pair(kind: str, seed: int, n: int, shift: float) -> tuple[Any, Any]:
    return _numeric_pair(seed, n, shift) if kind == "numeric" else _count_pair(seed, n, shift)


def _assert_strict_json(result: TestResult) -> None:
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert json.loads(text)["method"] == result.method


def check_drift_method(method: DriftMethod) -> None:
    """Run every conformance check on one registered method; raise AssertionError if one
    fails, with the method's name in the message."""
    name, kind, func = method.name, method.kind, method.func
    where = f"{kind} method {name!r}"
    doc = func.__doc__ or ""
    assert "Examples" in doc and ">>>" in doc, f"{where} has no docstring Examples section"

    ref, cur = _pair(kind, 1, 2_000, 0.0)
    ref_copy, cur_copy = ref.copy(), cur.copy()
    first = func(ref, cur)
    assert np.array_equal(ref, ref_copy) and np.array_equal(cur, cur_copy), (
        f"{where} mutated its input"
    )
    second = func(ref, cur)
    assert first == second, f"{where} is not deterministic: {first} != {second}"
    assert isinstance(first, TestResult), f"{where} must return a TestResult"
    _assert_strict_json(first)

    same = func(ref, ref.copy())
    assert same.effect_size <= 1e-9 + 1e-12 * abs(same.statistic), (
        f"{where}: identical samples give effect {same.effect_size}"
    )
    if method.has_p_value:
        assert same.p_value is not None and same.p_value > 0.5, (
            f"{where}: identical samples give p={same.p_value}"
        )

    shift = 1.0 if kind == "numeric" else 0.8
    far = func(*_pair(kind, 2, 2_000, shift))
    assert far.effect_size >= method.effect_floor, (
        f"{where}: a large shift gives effect {far.effect_size} "
        f"below its floor {method.effect_floor}"
    )
    if method.has_p_value:
        assert far.p_value is not None and far.p_value < 1e-3, (
            f"{where}: large shift p={far.p_value}"
        )

    # Effect sizes estimate a property of the distributions, not of the sample size.
    small = func(*_pair(kind, 3, 2_000, shift)).effect_size
    large = func(*_pair(kind, 4, 50_000, shift)).effect_size
    assert abs(large - small) <= 0.25 * max(abs(large), 1e-9) + 0.02, (
        f"{where}: effect grows with n ({small} at 2,000 vs {large} at 50,000)"
    )


def check_multivariate_method(func: Any, *, effect_floor: float = 0.0) -> None:
    """Conformance checks for a multivariate method ``func(reference, current, random_state=)``."""
    rng = np.random.default_rng(7)
    ref = rng.standard_normal((600, 4))
    cur = rng.standard_normal((600, 4))
    ref_copy, cur_copy = ref.copy(), cur.copy()
    a = func(ref, cur, random_state=3)
    assert np.array_equal(ref, ref_copy) and np.array_equal(cur, cur_copy), "input mutated"
    b = func(ref, cur, random_state=3)
    assert a == b, f"not deterministic with a seed: {a} != {b}"
    _assert_strict_json(a)
    shifted = func(ref, cur + 1.0, random_state=3)
    assert shifted.p_value is not None and shifted.p_value < 0.01, (
        f"misses a 1-sigma shift: {shifted}"
    )
    assert shifted.effect_size >= effect_floor, (
        f"effect {shifted.effect_size} below floor {effect_floor}"
    )


def _errors(seed: int, n_before: int, n_after: int, before: float, after: float) -> Any:
    rng = np.random.default_rng(seed)
    return np.r_[rng.random(n_before) < before, rng.random(n_after) < after].astype(np.float64)


def _signals(det: Any, stream: Any) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    drifts, warnings = [], []
    for i, x in enumerate(stream):
        det.update(float(x))
        if det.drift_detected:
            drifts.append(i)
        warnings.append(bool(getattr(det, "warning_detected", False)))
    return tuple(drifts), tuple(warnings)


def check_detector(name: str, **params: Any) -> None:
    """Run the conformance checks on the registered concept-drift detector ``name``; raise
    AssertionError if one fails, with the detector's name in the message.

    Checks: a documented example; the same stream gives the same signals (seeded); the input
    array is not mutated; ``reset()`` gives a fresh detector; the state is strict JSON and a
    detector restored from it (at several points, including right after a drift) continues
    with exactly the signals of an uninterrupted run; a large abrupt rise of the error rate
    is detected.
    """
    from watchkeeper.checks import Detector, get_detector, run_detector

    where = f"detector {name!r}"
    det = get_detector(name, **params)
    doc = type(det).__doc__ or ""
    assert "Examples" in doc and ">>>" in doc, f"{where} has no docstring Examples section"

    # Short, because KSWIN runs an exact KS test per value (~0.3 ms each).
    stream = _errors(11, 800, 800, 0.05, 0.6)
    copy = stream.copy()
    first = run_detector(get_detector(name, **params), stream)
    assert np.array_equal(stream, copy), f"{where} mutated its input"
    second = run_detector(get_detector(name, **params), stream)
    assert first == second, f"{where} is not deterministic: {first} != {second}"
    assert any(i >= 800 for i in first.drift_indices), (
        f"{where} misses a rise of the error rate from 5% to 60% (signals {first.drift_indices})"
    )

    used = get_detector(name, **params)
    run_detector(used, stream[:500])
    assert used.reset().n_seen == 0 and used.last_drift_at is None, f"{where}: reset kept counts"
    assert run_detector(used, stream) == first, f"{where}: reset() is not a fresh detector"

    expected = _signals(get_detector(name, **params), stream)
    cuts = sorted({1, 799, *(i + 1 for i in first.drift_indices[:2])})
    for cut in cuts:
        head = get_detector(name, **params)
        head_signals = _signals(head, stream[:cut])
        state = json.loads(json.dumps(head.to_state(), allow_nan=False))
        restored = Detector.from_state(state)
        assert restored.n_seen == cut, f"{where}: restored n_seen {restored.n_seen} != {cut}"
        tail_signals = _signals(restored, stream[cut:])
        joined = (
            head_signals[0] + tuple(cut + i for i in tail_signals[0]),
            head_signals[1] + tail_signals[1],
        )
        assert joined == expected, f"{where}: restored at row {cut} diverges from a single run"
