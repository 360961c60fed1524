"""Windows are profiled once and their profiles merge: shards, hours into weeks, stores."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from watchkeeper.checks import ComparisonConfig, run_comparison
from watchkeeper.data import Profile, Schema
from watchkeeper.data._sketch import KLL_K


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    data: dict[str, Any] = {f"x{i}": rng.normal(shift * (i == 0), 1.0, n) for i in range(6)}
    data["city"] = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])
    data["group"] = rng.choice(["f", "m"], n)
    data["label"] = rng.integers(0, 2, n)
    data["pred"] = np.where(rng.random(n) < 0.8, data["label"], 1 - data["label"])
    frame = pd.DataFrame(data)
    frame.loc[rng.random(n) < 0.02, "x1"] = np.nan
    return frame


def _schema(frame: pd.DataFrame) -> Schema:
    return Schema.infer(
        frame,
        roles={"group": "sensitive", "label": "target", "pred": "prediction"},
        kinds={"label": "categorical", "pred": "categorical"},
    )


def _merged(parts: list[Profile]) -> Profile:
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p)
    return out


def _assert_same_counts(merged: Profile, whole: Profile) -> None:
    assert merged.n_rows == whole.n_rows
    for name, w in whole.columns.items():
        m = merged.columns[name]
        assert (m.count, m.n_missing) == (w.count, w.n_missing), name
        if w.kind == "numeric":
            assert m.bin_counts == w.bin_counts, name
            assert (m.min, m.max) == (w.min, w.max), name
            assert (m.n_below_reference_min, m.n_above_reference_max) == (
                w.n_below_reference_min,
                w.n_above_reference_max,
            )
            # moments: the same numbers up to float rounding of the merge formula
            for field in ("mean", "m2", "m3", "m4"):
                assert getattr(m, field) == pytest.approx(getattr(w, field), rel=1e-9, abs=1e-9)
        else:
            assert (m.categories, m.counts, m.other_count) == (
                w.categories,
                w.counts,
                w.other_count,
            )
    assert merged.group_counts == whole.group_counts


@pytest.mark.parametrize("seed", range(4))
def test_window_split_into_random_parts_merges_to_the_whole(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference_frame = _frame(rng, 4000)
    reference = Profile.from_data(reference_frame, _schema(reference_frame))
    window = _frame(rng, 3000, shift=0.15)
    k = int(rng.integers(2, 7))
    cuts = np.sort(rng.choice(np.arange(1, len(window)), size=k - 1, replace=False))
    order = rng.permutation(len(window))  # rows land on shards at random
    parts = np.split(order, cuts)
    schema = reference.schema
    whole = Profile.from_data(window, schema, reference=reference)
    shards = [Profile.from_data(window.iloc[idx], schema, reference=reference) for idx in parts]
    rng.shuffle(shards)  # merged in any order
    merged = _merged(shards)
    _assert_same_counts(merged, whole)
    # the row sample holds every row: identical, so exact tests are identical too
    assert merged.sample.equals(whole.sample)
    # quantiles from the merged KLL sketch are within its documented rank error
    col = merged.numeric("x0")
    values = np.sort(window["x0"].to_numpy())
    bound = col.quantile_rank_error + 1 / values.size
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        rank = np.searchsorted(values, col.quantile(q), side="right") / values.size
        assert abs(rank - q) <= bound, (q, rank, bound, KLL_K)
    config = ComparisonConfig(multivariate="pca_reconstruction")
    a, b = run_comparison(reference, merged, config), run_comparison(reference, whole, config)
    verdicts = [(c.name, c.statistic, c.p_value, c.status) for c in a.columns]
    assert verdicts == [(c.name, c.statistic, c.p_value, c.status) for c in b.columns]
    assert [(m.statistic, m.status) for m in a.multivariate] == [
        (m.statistic, m.status) for m in b.multivariate
    ]
    assert [(q.check, q.subject, q.status, q.value) for q in a.quality] == [
        (q.check, q.subject, q.status, q.value) for q in b.quality
    ]


def test_a_sample_smaller_than_the_window_is_still_the_whole_windows_sample() -> None:
    """Bottom-k samples merge exactly: KS on the merged profile equals KS on the whole
    window's profile even when the sample holds a fraction of the rows."""
    rng = np.random.default_rng(7)
    reference_frame = _frame(rng, 3000)
    reference = Profile.from_data(reference_frame, _schema(reference_frame))
    window = _frame(rng, 6000, shift=0.1)
    whole = Profile.from_data(window, reference.schema, reference=reference, sample_size=800)
    shards = [
        Profile.from_data(window.iloc[i::4], reference.schema, reference=reference, sample_size=800)
        for i in range(4)
    ]
    merged = _merged(shards)
    assert merged.sample.equals(whole.sample)
    config = ComparisonConfig(multivariate=None)
    a, b = run_comparison(reference, merged, config), run_comparison(reference, whole, config)
    assert [(c.name, c.p_value, c.n_current) for c in a.columns] == [
        (c.name, c.p_value, c.n_current) for c in b.columns
    ]
    assert a.column("x0").n_current == 800  # KS ran on the sample, as the report says


def _store_roundtrip(store: Any) -> None:
    rng = np.random.default_rng(3)
    reference_frame = _frame(rng, 2000)
    reference = Profile.from_data(reference_frame, _schema(reference_frame))
    hours = [_frame(rng, 50) for _ in range(168)]
    t0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    for h, frame in enumerate(hours):
        start = datetime.fromtimestamp(t0 + 3600 * h, UTC)
        end = datetime.fromtimestamp(t0 + 3600 * (h + 1), UTC)
        profile = Profile.from_data(frame, reference.schema, reference=reference)
        store.write_window(
            "m", 1, "champion", start, end, "time", len(frame), 0, [],
            run_id="r", window_profiles={"features": profile},
        )  # fmt: skip
    week = store.merged_profile("m", "features", version=1)
    whole = Profile.from_data(pd.concat(hours), reference.schema, reference=reference)
    _assert_same_counts(week, whole)
    assert week.sample.equals(whole.sample)
    day = store.merged_profile(
        "m",
        since=datetime.fromtimestamp(t0 + 1, UTC),
        until=datetime.fromtimestamp(t0 + 86400 + 1, UTC),
    )
    assert day.n_rows == 24 * 50
    assert store.merged_profile("m", "predictions") is None
    # a window evaluated again replaces its profile, it is not counted twice
    start, end = (datetime.fromtimestamp(t0 + s, UTC) for s in (0, 3600))
    again = Profile.from_data(hours[0], reference.schema, reference=reference)
    store.write_window(
        "m", 1, "champion", start, end, "time", 50, 0, [], run_id="r2",
        window_profiles={"features": again},
    )  # fmt: skip
    assert store.merged_profile("m").n_rows == whole.n_rows


def test_hourly_profiles_merge_into_day_and_week_views_sqlite(tmp_path: Path) -> None:
    from watchkeeper.monitor import MonitorStore

    with MonitorStore(root=tmp_path) as store:
        _store_roundtrip(store)


@pytest.mark.service
def test_hourly_profiles_merge_into_day_and_week_views_postgres(monitor_postgres: Any) -> None:
    from watchkeeper.monitor import MonitorStore

    with MonitorStore(str(monitor_postgres.create_schema())) as store:
        _store_roundtrip(store)


def test_the_monitor_stores_one_profile_per_window_and_checks_it(tmp_path: Path) -> None:
    """A monitored log: every window's features and predictions profiles are stored, their
    merge is the profile of the log's rows, and the stored verdicts are those of the
    engine on the stored profile."""
    from sklearn.dummy import DummyRegressor

    from watchkeeper.logstore import PredictionRecord, SQLiteLogSink
    from watchkeeper.monitor import Monitor, MonitorConfig, MonitorStore
    from watchkeeper.registry import Registry

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=800), "z": rng.normal(size=800)})
    registry = Registry(root=tmp_path)
    registry.register("m", DummyRegressor().fit([[0.0]], [1.0]), actor="a", reference=ref)
    sink = SQLiteLogSink(str(tmp_path / "predictions.db"))
    t0 = 1_700_000_000 // 3600 * 3600
    xs = rng.normal(0.3, 1.0, 1200)
    zs = rng.normal(size=1200)
    sink.write_predictions(
        [
            PredictionRecord(f"r{i}", t0 + i * 12.0, "m", 1, "champion",
                             {"x": float(xs[i]), "z": float(zs[i])}, float(i % 7))
            for i in range(1200)
        ]
    )  # fmt: skip
    store = MonitorStore(root=tmp_path)
    config = MonitorConfig(every="1h", detectors=(), estimators=(), baseline_rows=200)
    Monitor(config).run(sink, registry, store, now=t0 + 4 * 3600)
    stored = store.window_profiles("m", "features", version=1)
    assert [w.n_rows for w, _ in stored] == [300, 300, 300, 300]
    reference = registry.load_profile("m", 1)
    merged = store.merged_profile("m", version=1)
    whole = Profile.from_data(
        pa.table({"x": xs, "z": zs}), reference.schema.select(["x", "z"]), reference=reference
    )
    _assert_same_counts(merged, whole)
    window, profile = stored[1]
    engine = run_comparison(
        reference,
        profile,
        ComparisonConfig(multivariate=None, n_jobs=1, plots=False),
        schema=reference.schema.select(["x", "z"]),
    )
    found = {
        r.subject: r.status
        for r in store.results("m", check="drift.ks", version=1)
        if r.window_start == window.window_start and r.subject in ("x", "z")
    }
    assert found == {c.name: c.status for c in engine.columns}
    assert found["x"].value == "alert"
    preds = store.window_profiles("m", "predictions", version=1)
    assert len(preds) == 4
    sink.close()
    registry.close()
    store.close()


def test_a_schema_1_store_with_json_profiles_still_reads_and_migrates(tmp_path: Path) -> None:
    """Stores written before the binary layout keep their JSON profiles: they are migrated
    (a binary column added, the schema version raised), their rows read as before, and new
    windows are stored in the binary layout beside them; the merge spans both."""
    import json
    import sqlite3

    from watchkeeper.monitor import MonitorStore

    rng = np.random.default_rng(5)
    reference_frame = _frame(rng, 1000)
    reference = Profile.from_data(reference_frame, _schema(reference_frame))
    hours = [_frame(rng, 40) for _ in range(4)]
    profiles = [Profile.from_data(h, reference.schema, reference=reference) for h in hours]
    t0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()

    def write(store: MonitorStore, h: int) -> None:
        start = datetime.fromtimestamp(t0 + 3600 * h, UTC)
        end = datetime.fromtimestamp(t0 + 3600 * (h + 1), UTC)
        store.write_window(
            "m", 1, "champion", start, end, "time", 40, 0, [],
            run_id="r", window_profiles={"features": profiles[h]},
        )  # fmt: skip

    with MonitorStore(root=tmp_path) as store:
        write(store, 0)
        write(store, 1)
    db = tmp_path / "monitor.db"
    with sqlite3.connect(db) as conn:  # back to schema 1: JSON in `profile`, no binary column
        rows = conn.execute("SELECT window_end, profile_bin FROM wk_monitor_profiles").fetchall()
        assert all(blob is not None for _, blob in rows)
        for h, (end, _) in enumerate(sorted(rows)):
            text = json.dumps(profiles[h].to_dict(), separators=(",", ":"))
            conn.execute(
                "UPDATE wk_monitor_profiles SET profile = ? WHERE window_end = ?", (text, end)
            )
        conn.execute("ALTER TABLE wk_monitor_profiles DROP COLUMN profile_bin")
        conn.execute("UPDATE wk_monitor_meta SET value = '1' WHERE key = 'schema_version'")
    with MonitorStore(root=tmp_path) as store:
        old = store.window_profiles("m", version=1)
        assert [p.n_rows for _, p in old] == [40, 40]
        assert old[0][1].sample.equals(profiles[0].sample)
        write(store, 2)
        write(store, 3)
        merged = store.merged_profile("m", version=1)
    whole = Profile.from_data(pd.concat(hours), reference.schema, reference=reference)
    _assert_same_counts(merged, whole)
    assert merged.sample.equals(whole.sample)
    with sqlite3.connect(db) as conn:
        version = conn.execute("SELECT value FROM wk_monitor_meta WHERE key = 'schema_version'")
        assert version.fetchone()[0] == "2"
        stored = conn.execute(
            "SELECT profile = '', profile_bin IS NOT NULL FROM wk_monitor_profiles "
            "ORDER BY window_end"
        ).fetchall()
        assert stored == [(0, 0), (0, 0), (1, 1), (1, 1)]
