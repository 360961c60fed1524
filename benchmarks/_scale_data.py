"""Seeded Parquet files for ``scale.py``: N rows x 20 float64 columns, written row group by
row group so that writing 100 million rows needs no more memory than one group.

Columns ``f00``..``f19`` are standard normal; in the current files ``f00`` is shifted by 0.05
standard deviations and ``f01`` scaled by 1.05 (the drift every tool should find); the other 18
columns do not change.
"""

from __future__ import annotations

from pathlib import Path

N_COLUMNS = 20
GROUP_ROWS = 1_000_000
DRIFTED = ("f00", "f01")


def columns() -> list[str]:
    return [f"f{i:02d}" for i in range(N_COLUMNS)]


def write(path: Path, rows: int, *, seed: int, drift: bool) -> Path:
    """Write the file once (kept if it already has the right number of rows)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    schema = pa.schema([(c, pa.float64()) for c in columns()])
    with pq.ParquetWriter(tmp, schema, compression="snappy") as writer:
        for i, start in enumerate(range(0, rows, GROUP_ROWS)):
            n = min(GROUP_ROWS, rows - start)
            rng = np.random.default_rng([seed, i])
            x = rng.standard_normal((N_COLUMNS, n))
            if drift:
                x[0] += 0.05
                x[1] *= 1.05
            writer.write_table(pa.table(dict(zip(columns(), x, strict=True)), schema=schema))
    tmp.replace(path)
    return path
