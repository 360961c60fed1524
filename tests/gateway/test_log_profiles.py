"""The gateway profiles what it logs: after serving, the log holds hourly partial profiles of
each version and arm whose merge is the profile of the logged rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.data import Profile
from watchkeeper.logstore import SQLiteLogSink, reference_key
from watchkeeper.monitor import MonitorConfig
from watchkeeper.monitor._window_checks import window_profile
from watchkeeper.registry import Registry

from ._apps import churn_record, fresh_root, gateway

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


async def test_served_records_leave_partial_profiles_that_merge_to_the_logged_rows(
    root: Path,
) -> None:
    async with gateway(root) as client:
        for start in range(0, 60, 12):  # several requests, several commits
            records = [churn_record(i) for i in range(start, start + 12)]
            resp = await client.post("/v1/models/churn/predict", json=records)
            assert resp.status_code == 200, resp.text
    # the app's shutdown flushed the profiler: every logged row is in a partial
    with Registry(root=root) as registry:
        reference = registry.load_profile("churn", 1)
    with SQLiteLogSink(root / "predictions.db") as sink:
        rows = sink.read_window("churn", start=0, end=4e9)
        partials = sink.profile_partials("churn", start=0, end=4e9)
    assert rows.num_rows == 60
    assert {(p.version, p.arm) for p in partials} == {(1, "champion")}
    assert {p.reference for p in partials} == {reference_key(reference)}
    merged = None
    for p in partials:
        one = Profile.from_bytes(p.profile)
        merged = one if merged is None else merged.merge(one)
    assert merged is not None
    assert sum(p.n_rows for p in partials) == merged.n_rows == 60
    whole = window_profile(rows, reference, MonitorConfig())
    # features and the sensitive attribute, as the monitor profiles a window
    assert list(merged.columns) == list(whole.columns)
    assert "region" in merged.columns
    for name, w in whole.columns.items():
        m = merged.columns[name]
        assert (m.count, m.n_missing) == (w.count, w.n_missing), name
        if w.kind == "numeric":
            assert (m.bin_counts, m.min, m.max) == (w.bin_counts, w.min, w.max), name
            assert m.mean == pytest.approx(w.mean, rel=1e-12), name
        else:
            assert (m.categories, m.counts) == (w.categories, w.counts), name
    assert merged.sample.equals(whole.sample)
