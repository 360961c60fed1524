"""Execution engines that compute the same profiles where the data lives.

The local engine (:func:`profile_windows`) profiles a table or a Parquet file per monitoring
window on this machine, in memory bounded by one batch. :mod:`watchkeeper.engines.spark`
(``pip install "watchkeeper[spark]"``, imported only when used) computes the same profiles on a
Spark cluster: every partition runs the local profiling code and the driver merges, so both
engines give the same counts, bins and verdicts.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from watchkeeper.data import Profile
>>> from watchkeeper.engines import profile_windows
>>> rng = np.random.default_rng(0)
>>> log = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=96, freq="h", tz="UTC"),
...                     "x": rng.normal(size=96)})
>>> reference = Profile.from_data(log[["x"]])
>>> windows = profile_windows(log, reference, time_column="ts", every="1d")
>>> [(str(start.date()), p.n_rows) for start, p in windows.items()]
[('2024-01-01', 24), ('2024-01-02', 24), ('2024-01-03', 24), ('2024-01-04', 24)]
"""

from __future__ import annotations

from watchkeeper.engines._windows import profile_log_windows, profile_windows, window_reports

__all__ = ["profile_log_windows", "profile_windows", "window_reports"]
