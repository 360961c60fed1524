"""Seeded data for the drift benchmark, written once as Parquet and read by every tool.

Two cases, each with a reference, a current with known drift and a current without drift:

- ``numeric``: 20 columns ``x00``..``x19``, all N(0, 1) in the reference. In the drifted
  current ``x00`` has its mean moved by 0.05 sigma and ``x01`` its scale grown by 20 %
  (sigma 1.2); the other 18 columns are fresh N(0, 1) draws.
- ``mixed``: 10 numeric columns (the same two drifts) and 5 categorical columns ``c00``..``c04``
  with 10 levels each at Zipf-like frequencies (p_k proportional to 1/k). In the drifted
  current the rarest level of ``c00`` doubles its share (3.4 % -> 6.6 %, the others shrink in
  proportion); the other categorical columns are unchanged.

The no-drift current is an independent draw from the reference distribution, so any column a
tool flags on it is a false alarm.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Bump when the generated data change, so that cached files are rewritten.
DATA_VERSION = 1

MEAN_SHIFT = 0.05
SCALE = 1.2
N_LEVELS = 10
PAIRS = ("drift", "nodrift")


@dataclass(frozen=True)
class Case:
    name: str
    n_numeric: int
    n_categorical: int

    @property
    def numeric_columns(self) -> list[str]:
        return [f"x{i:02d}" for i in range(self.n_numeric)]

    @property
    def categorical_columns(self) -> list[str]:
        return [f"c{i:02d}" for i in range(self.n_categorical)]

    @property
    def columns(self) -> list[str]:
        return self.numeric_columns + self.categorical_columns

    @property
    def drifted_columns(self) -> list[str]:
        """Columns whose distribution differs in the drifted current (the known answer)."""
        return ["x00", "x01"] + (["c00"] if self.n_categorical else [])


CASES: dict[str, Case] = {
    "numeric": Case("numeric", n_numeric=20, n_categorical=0),
    "mixed": Case("mixed", n_numeric=10, n_categorical=5),
}


def level_probabilities(drifted: bool) -> np.ndarray:
    p = 1.0 / np.arange(1, N_LEVELS + 1)
    if drifted:
        p[-1] *= 2.0
    out: np.ndarray = p / p.sum()
    return out


def _frame(case: Case, rows: int, seed: int, drifted: bool) -> Any:
    import pandas as pd

    root = np.random.default_rng(seed)
    # One child stream per column: a column's values do not depend on how many columns exist.
    streams = root.spawn(case.n_numeric + case.n_categorical)
    data: dict[str, Any] = {}
    for i, name in enumerate(case.numeric_columns):
        loc = MEAN_SHIFT if (drifted and name == "x00") else 0.0
        scale = SCALE if (drifted and name == "x01") else 1.0
        data[name] = streams[i].normal(loc, scale, size=rows)
    levels = pd.Index([f"L{k}" for k in range(N_LEVELS)])
    for j, name in enumerate(case.categorical_columns):
        p = level_probabilities(drifted and name == "c00")
        codes = streams[case.n_numeric + j].choice(N_LEVELS, size=rows, p=p).astype(np.int8)
        data[name] = pd.Categorical.from_codes(codes, categories=levels)
    return pd.DataFrame(data)


@dataclass(frozen=True)
class CaseFiles:
    case: str
    rows: int
    reference: str
    current: dict[str, str]
    profile: str
    expected_drift: list[str]
    numeric_columns: list[str]
    categorical_columns: list[str]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CaseFiles:
        return cls(**json.loads(text))


def ensure_case(case_name: str, rows: int, data_dir: Path) -> CaseFiles:
    """Write the case's Parquet files under `data_dir` unless they exist for this version."""
    case = CASES[case_name]
    folder = data_dir / f"v{DATA_VERSION}-{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    files = CaseFiles(
        case=case.name,
        rows=rows,
        reference=str(folder / f"{case.name}-reference.parquet"),
        current={pair: str(folder / f"{case.name}-current-{pair}.parquet") for pair in PAIRS},
        profile=str(folder / f"{case.name}-reference.profile.wkp"),  # binary, the default
        expected_drift=case.drifted_columns,
        numeric_columns=case.numeric_columns,
        categorical_columns=case.categorical_columns,
    )
    # Seeds differ per file and per case so that no two frames share draws.
    base = 1000 * (1 + list(CASES).index(case.name))
    targets = [
        (files.reference, base + 1, False),
        (files.current["drift"], base + 2, True),
        (files.current["nodrift"], base + 3, False),
    ]
    for path, seed, drifted in targets:
        if not Path(path).exists():
            tmp = Path(path + ".tmp")
            _frame(case, rows, seed, drifted).to_parquet(tmp, index=False)
            tmp.rename(path)
    return files
