"""Draw the bundled ACS employment extract (``datasets/data/acs_employment_ma.parquet``).

Source: the Massachusetts employment task that ships with nannyml 0.13.1
(``nannyml/datasets/data/employment_MA_*.pq``), derived from US Census ACS PUMS 2015–2018
person records (public domain) through folktables (MIT). Only the census columns, the label and
the year are kept (nannyml's model outputs are dropped).

The subsample is stratified by year, sex, race (RAC1P) and the label: every stratum keeps its
share (largest-remainder rounding), and every stratum present in the source keeps at least one
row, so the smallest race groups stay in the data (which is what makes them useful for testing
``insufficient_data``). Seeded; run again to reproduce the file byte for byte::

    python scripts/make_acs_employment.py \\
        benchmarks/.venv-peers/lib/python3.11/site-packages/nannyml/datasets/data
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = [
    "AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY",
    "DEAR", "DEYE", "DREM", "SEX", "RAC1P", "employed", "year",
]  # fmt: skip
STRATA = ["year", "SEX", "RAC1P", "employed"]
PER_PERIOD = 30_000  # rows of 2015 and rows of 2016-2018
SEED = 20240601
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src/watchkeeper/datasets/data/acs_employment_ma.parquet"


def _stratified(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    sizes = frame.groupby(STRATA, observed=True).size()
    quota = sizes / sizes.sum() * n
    take = np.maximum(np.floor(quota).astype(int), 1)
    remainder = (quota - np.floor(quota)).sort_values(ascending=False, kind="stable")
    for key in remainder.index[: max(n - int(take.sum()), 0)]:
        take[key] += 1
    parts = []
    for key, group in frame.groupby(STRATA, observed=True):
        k = min(int(take[key]), len(group))
        parts.append(group.iloc[np.sort(rng.choice(len(group), k, replace=False))])
    return pd.concat(parts)


def main(source: str) -> None:
    folder = Path(source)
    reference = pd.read_parquet(folder / "employment_MA_reference.pq")
    analysis = pd.read_parquet(folder / "employment_MA_analysis.pq")
    target = pd.read_parquet(folder / "employment_MA_analysis_target.pq")
    analysis = analysis.merge(target, on="id", validate="one_to_one")
    rng = np.random.default_rng(SEED)
    sample = pd.concat(
        [_stratified(reference, PER_PERIOD, rng), _stratified(analysis, PER_PERIOD, rng)]
    )
    sample = sample.sort_values("id", kind="stable")[COLUMNS].reset_index(drop=True)
    for c in COLUMNS:
        if c in ("AGEP", "employed", "year"):
            continue
        sample[c] = sample[c].astype(str)
    table = pa.table(
        {
            **{c: pa.array(sample[c]).dictionary_encode() for c in COLUMNS[:16]},
            "AGEP": pa.array(sample["AGEP"].astype("int8")),
            "employed": pa.array(sample["employed"].astype("int8")),
            "year": pa.array(sample["year"].astype("int16")),
        }
    ).select(COLUMNS)
    table = table.replace_schema_metadata(None)
    pq.write_table(table, OUT, compression="zstd", compression_level=19, use_dictionary=True)
    print(f"{len(sample):,} rows -> {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main(sys.argv[1])
