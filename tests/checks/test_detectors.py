"""Concept-drift detectors: agreement with River, state round trip, false alarms, detection."""

from __future__ import annotations

import base64
import json
import os
import pickle
from typing import Any

import numpy as np
import pytest
from river import drift as river_drift
from river.drift import binary as river_binary

from watchkeeper.checks import (
    ADWIN,
    DDM,
    DEFAULT_DETECTORS,
    EDDM,
    KSWIN,
    CheckResult,
    Detector,
    PageHinkley,
    Status,
    available_detectors,
    check_concept_drift,
    check_concept_drift_detectors,
    error_stream,
    get_detector,
    run_detector,
)
from watchkeeper.exceptions import InputError
from watchkeeper.testing import check_detector

RIVER = {
    "adwin": river_drift.ADWIN,
    "page_hinkley": river_drift.PageHinkley,
    "kswin": river_drift.KSWIN,
    "ddm": river_binary.DDM,
    "eddm": river_binary.EDDM,
}


def _errors(seed: int, sizes: tuple[int, ...], rates: tuple[float, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(n) < p for n, p in zip(sizes, rates, strict=True)]).astype(
        float
    )


def _river_signals(river_det: Any, stream: np.ndarray, binary: bool) -> tuple[list[int], list[int]]:
    drifts, warnings = [], []
    for i, x in enumerate(stream.tolist()):
        river_det.update(int(x) if binary else x)
        if river_det.drift_detected:
            drifts.append(i)
        if getattr(river_det, "warning_detected", False):
            warnings.append(i)
    return drifts, warnings


def _signals(det: Detector, stream: np.ndarray) -> tuple[list[int], list[int]]:
    drifts, warnings = [], []
    for i, x in enumerate(stream.tolist()):
        det.update(x)
        if det.drift_detected:
            drifts.append(i)
        if getattr(det, "warning_detected", False):
            warnings.append(i)
    return drifts, warnings


def test_the_issue_detectors_are_registered() -> None:
    assert set(available_detectors()) == {"adwin", "page_hinkley", "ddm", "eddm", "kswin"}
    assert {type(get_detector(n)) for n in available_detectors()} == {
        ADWIN, PageHinkley, DDM, EDDM, KSWIN,
    }  # fmt: skip
    assert set(DEFAULT_DETECTORS) <= set(available_detectors())


@pytest.mark.parametrize("name", available_detectors())
def test_conformance(name: str) -> None:
    check_detector(name)


# --- agreement with River used directly -------------------------------------------------------

AGREEMENT = [
    ("adwin", {}),
    ("adwin", {"delta": 0.05, "clock": 1}),
    ("page_hinkley", {}),
    ("page_hinkley", {"mode": "up", "threshold": 20.0, "delta": 0.01}),
    ("ddm", {}),
    ("ddm", {"warm_start": 100, "warning_threshold": 1.5, "drift_threshold": 2.5}),
    ("eddm", {}),
    ("eddm", {"alpha": 0.8, "beta": 0.7}),
    ("kswin", {"seed": 3}),
]


@pytest.mark.parametrize(("name", "params"), AGREEMENT, ids=[f"{n}-{p}" for n, p in AGREEMENT])
def test_same_signals_as_river(name: str, params: dict[str, Any]) -> None:
    n = 1_200 if name == "kswin" else 6_000
    stream = _errors(5, (n // 2, n // 4, n // 4), (0.1, 0.35, 0.15))
    ours = get_detector(name, **params)
    theirs = RIVER[name](**ours.params)
    expected = _river_signals(theirs, stream, ours.binary)
    assert _signals(ours, stream) == expected
    assert expected[0], "the stream should make every detector signal at least once"


@pytest.mark.parametrize("name", ["adwin", "page_hinkley", "kswin"])
def test_same_signals_as_river_on_losses(name: str) -> None:
    rng = np.random.default_rng(9)
    n = 600 if name == "kswin" else 3_000
    stream = np.r_[rng.exponential(1.0, n), rng.exponential(2.5, n)]
    ours = get_detector(name)
    expected = _river_signals(RIVER[name](**ours.params), stream, binary=False)
    assert _signals(ours, stream) == expected
    assert expected[0]


# --- state ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", available_detectors())
def test_state_round_trip_over_many_runs(name: str) -> None:
    """The monitor's pattern: restore, feed a window, save; same decisions as one long run."""
    n = 1_500 if name == "kswin" else 6_000
    stream = _errors(21, (n // 2, n // 2), (0.1, 0.4))
    single = run_detector(get_detector(name), stream)
    state = get_detector(name).to_state()
    drifts: list[int] = []
    for start in range(0, n, n // 7):
        det = Detector.from_state(json.loads(json.dumps(state, allow_nan=False)))
        run = run_detector(det, stream[start : start + n // 7])
        assert run.first_row == start
        drifts += [run.first_row + i for i in run.drift_indices]
        state = det.to_state()
    assert tuple(drifts) == single.drift_indices
    assert state["n_seen"] == n
    assert state["last_drift_at"] == (single.drift_indices[-1] if single.drift_indices else None)


def test_state_is_plain_json_with_readable_fields() -> None:
    det = DDM(warm_start=50)
    run_detector(det, _errors(1, (300,), (0.2,)))
    state = det.to_state()
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    assert state["detector"] == "ddm"
    assert state["params"] == {"warm_start": 50, "warning_threshold": 2.0, "drift_threshold": 3.0}
    assert state["n_seen"] == 300


def test_state_of_the_wrong_kind_or_version_is_refused() -> None:
    state = ADWIN().to_state()
    with pytest.raises(InputError, match="not 'ddm'"):
        DDM.from_state(state)
    assert isinstance(ADWIN.from_state(state), ADWIN)
    with pytest.raises(InputError, match="start a fresh detector"):
        Detector.from_state({**state, "river_version": "0.0.1"})
    with pytest.raises(InputError, match="not a detector state"):
        Detector.from_state({"detector": "adwin"})
    with pytest.raises(InputError, match="unknown detector"):
        Detector.from_state({**state, "detector": "nope"})
    with pytest.raises(InputError, match="corrupt"):
        Detector.from_state({**state, "river_state": "not base64!"})


class _Exploit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned",))


def test_a_tampered_state_cannot_run_code() -> None:
    state = ADWIN().to_state()
    payload = base64.b64encode(pickle.dumps({"_helper": _Exploit()})).decode("ascii")
    with pytest.raises(InputError, match="corrupt"):
        Detector.from_state({**state, "river_state": payload})


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("adwin", {"delta": 0.0}, "delta must be a number in"),
        ("adwin", {"delta": 1.5}, "delta must be a number in"),
        ("adwin", {"clock": 0}, "clock must be an integer >= 1"),
        ("adwin", {"clock": 2.5}, "clock must be an integer"),
        ("page_hinkley", {"mode": "sideways"}, "mode must be 'up', 'down' or 'both'"),
        ("page_hinkley", {"threshold": -1.0}, "threshold must be a number"),
        ("page_hinkley", {"alpha": 1.2}, "alpha must be a number"),
        ("ddm", {"warning_threshold": 3.0, "drift_threshold": 2.0}, "at least warning_threshold"),
        ("ddm", {"warm_start": 0}, "warm_start must be an integer >= 1"),
        ("eddm", {"alpha": 0.8, "beta": 0.9}, "must not exceed alpha"),
        ("kswin", {"stat_size": 60, "window_size": 100}, "window_size must be an integer >= 120"),
        ("kswin", {"alpha": float("nan")}, "alpha must be a number"),
        ("adwin", {"nonsense": 1}, "unexpected keyword"),
    ],
)
def test_bad_parameters_are_refused_clearly(name: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises((InputError, TypeError), match=match):
        get_detector(name, **params)


def test_unknown_detector_lists_the_valid_names() -> None:
    with pytest.raises(InputError, match="choose one of: adwin, ddm, eddm, kswin, page_hinkley"):
        get_detector("cusum")


@pytest.mark.parametrize("cls", [DDM, EDDM])
def test_binary_detectors_need_zero_one_input(cls: type[Detector]) -> None:
    with pytest.raises(InputError, match="needs 0/1 input"):
        cls().update(0.5)
    det = cls()
    with pytest.raises(InputError, match="position 2"):
        run_detector(det, [0, 1, 2, 0])
    assert det.n_seen == 0, "a rejected batch must leave the detector untouched"
    assert cls().update(True).update(0).n_seen == 2


def test_non_finite_input_is_refused() -> None:
    with pytest.raises(InputError, match="not finite"):
        ADWIN().update(float("nan"))
    with pytest.raises(InputError, match="1-D"):
        run_detector(ADWIN(), np.zeros((3, 2)))


# --- false alarms and detection -----------------------------------------------------------------

# Documented in docs/detectors.md (rows per false alarm on stationary 0/1 error streams); the
# bounds leave room for seed-to-seed spread.
FALSE_ALARMS_PER_100K = {"adwin": 5, "page_hinkley": 20, "ddm": 20, "eddm": 200}


@pytest.mark.parametrize("name", sorted(FALSE_ALARMS_PER_100K))
def test_false_alarms_on_a_stationary_stream_within_the_documented_rate(name: str) -> None:
    alarms = 0
    for seed in range(10):
        p = (0.05, 0.2, 0.4)[seed % 3]
        alarms += len(
            run_detector(get_detector(name), _errors(seed, (10_000,), (p,))).drift_indices
        )
    assert alarms <= FALSE_ALARMS_PER_100K[name], f"{name}: {alarms} false alarms in 100,000 rows"


def test_kswin_false_alarms_on_stationary_losses_within_its_alpha() -> None:
    rng = np.random.default_rng(4)
    run = run_detector(KSWIN(alpha=0.001), rng.exponential(1.0, 3_000))
    # One test per value; alpha=0.001 over ~2,900 tests with overlapping windows.
    assert len(run.drift_indices) <= 6


@pytest.mark.parametrize(
    ("name", "max_delay"),
    [("adwin", 300), ("page_hinkley", 400), ("ddm", 1_000), ("eddm", 300)],
)
def test_an_abrupt_rise_of_the_error_rate_is_detected(name: str, max_delay: int) -> None:
    delays = []
    for seed in range(10):
        stream = _errors(100 + seed, (3_000, 2_000), (0.1, 0.3))
        after = [
            i - 3_000 for i in run_detector(get_detector(name), stream).drift_indices if i >= 3_000
        ]
        assert after, f"{name} missed the drift (seed {seed})"
        delays.append(after[0])
    assert float(np.median(delays)) <= max_delay, f"{name}: delays {delays}"


def test_kswin_detects_a_change_of_the_loss_distribution() -> None:
    rng = np.random.default_rng(8)
    stream = np.r_[rng.exponential(1.0, 600), rng.exponential(3.0, 400)]
    hits = run_detector(KSWIN(alpha=0.0001), stream).drift_indices
    assert any(600 <= i < 700 for i in hits)


# --- CheckResults -------------------------------------------------------------------------------


def test_check_results_over_windows() -> None:
    det = ADWIN()
    quiet = check_concept_drift(det, _errors(1, (3_000,), (0.1,)))
    assert (quiet.check, quiet.subject, quiet.status) == ("concept.adwin", "model", Status.OK)
    assert quiet.value is None
    loud = check_concept_drift(det, _errors(2, (1_000,), (0.5,)))
    assert loud.status is Status.ALERT
    first = loud.details["drift_indices"][0]
    assert loud.details["drift_positions"][0] == 3_000 + first
    assert loud.details["first_row"] == 3_000
    assert loud.value == float(det.n_seen - 1 - det.last_drift_at)  # type: ignore[operator]
    assert "signalled a change" in loud.reason
    json.dumps(loud.to_dict(), allow_nan=False)
    assert isinstance(loud, CheckResult)


def test_insufficient_data_before_the_warm_up_and_after_a_restart() -> None:
    det = PageHinkley(min_instances=100)
    early = check_concept_drift(det, [0.0] * 50)
    assert early.status is Status.INSUFFICIENT_DATA
    assert "needs 100" in early.reason
    assert check_concept_drift(det, [0.0] * 60).status is Status.OK
    empty = check_concept_drift(det, [])
    assert empty.status is Status.OK
    assert empty.details["n_rows"] == 0


def test_warning_zone_gives_warn() -> None:
    det = DDM()
    assert check_concept_drift(det, ([1.0] + [0.0] * 9) * 200).status is Status.OK
    statuses = [check_concept_drift(det, [1.0] + [0.0] * 2).status for _ in range(100)]
    assert Status.WARN in statuses
    assert Status.ALERT in statuses
    assert statuses.index(Status.WARN) < statuses.index(Status.ALERT)


def test_concept_drift_checks_defaults_and_persistence() -> None:
    stream = _errors(6, (3_000, 1_000), (0.1, 0.5))
    results, dets = check_concept_drift_detectors(stream)
    assert [r.check for r in results] == [f"concept.{n}" for n in DEFAULT_DETECTORS]
    assert all(r.status is Status.ALERT for r in results)
    states = {n: d.to_state() for n, d in dets.items()}
    restored = {n: Detector.from_state(s) for n, s in states.items()}
    again, _ = check_concept_drift_detectors(_errors(7, (500,), (0.5,)), restored)
    assert [r.details["first_row"] for r in again] == [4_000] * len(again)


def test_concept_drift_checks_skips_binary_defaults_for_losses() -> None:
    rng = np.random.default_rng(0)
    results, dets = check_concept_drift_detectors(rng.exponential(1.0, 500))
    assert all(not d.binary for d in dets.values())
    assert [r.check for r in results] == ["concept.adwin"]
    with pytest.raises(InputError, match="0/1"):
        check_concept_drift_detectors(rng.exponential(1.0, 50), ["ddm"])


def test_error_stream() -> None:
    assert error_stream([1, 0, 1], [1, 1, 1]).tolist() == [0.0, 1.0, 0.0]
    assert error_stream([1.0, 3.0], [2.0, 1.0], task="regression").tolist() == [1.0, 2.0]
    with pytest.raises(InputError, match="aligned"):
        error_stream([1, 2], [1])
    with pytest.raises(InputError, match="task must be"):
        error_stream([1], [1], task="clustering")
    with pytest.raises(InputError, match="loss must be"):
        error_stream([1.0], [1.0], task="regression", loss="huber")
