"""Input adapters: every kind of input reads to the same Arrow data, bad input fails clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from watchkeeper.data import column_to_numpy, read_table
from watchkeeper.data._adapters import mixed_types_info, numeric_values
from watchkeeper.exceptions import InputError


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 200
    x = rng.normal(size=n)
    x[::17] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 5, size=n),
            "city": rng.choice(["Oslo", "Lima", "Pune"], size=n),
            "flag": rng.random(n) < 0.3,
        }
    )


def _all_inputs(frame: pd.DataFrame, tmp_path: Path) -> dict[str, object]:
    csv = tmp_path / "d.csv"
    frame.to_csv(csv, index=False)
    gz = tmp_path / "d.csv.gz"
    frame.to_csv(gz, index=False)
    parquet = tmp_path / "d.parquet"
    frame.to_parquet(parquet, index=False)
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    return {
        "pandas": frame,
        "polars": pl.from_pandas(frame),
        "arrow": arrow,
        "batch": arrow.to_batches()[0],
        "csv": csv,
        "csv.gz": str(gz),
        "parquet": parquet,
    }


def test_every_input_kind_gives_the_same_values(frame: pd.DataFrame, tmp_path: Path) -> None:
    for label, data in _all_inputs(frame, tmp_path).items():
        table = read_table(data)
        assert table.column_names == list(frame.columns), label
        np.testing.assert_array_equal(column_to_numpy(table, "x", "numeric"), frame["x"], label)
        np.testing.assert_array_equal(column_to_numpy(table, "k", "numeric"), frame["k"], label)
        cities = column_to_numpy(table, "city", "categorical")
        assert cities.tolist() == frame["city"].tolist(), label
        flags = column_to_numpy(table, "flag", "categorical")
        assert flags.tolist() == ["true" if f else "false" for f in frame["flag"]], label
        np.testing.assert_array_equal(column_to_numpy(table, "flag", "boolean"), frame["flag"])


def test_arrow_table_is_not_copied(frame: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    assert read_table(table) is table


def test_numeric_counts_non_numbers_as_type_errors() -> None:
    table = pa.table({"s": ["1.5", "oops", None, "", "nan", "2", "zz"]})
    values, n_bad, examples = numeric_values(table.column("s"))
    np.testing.assert_array_equal(values, [1.5, np.nan, np.nan, np.nan, np.nan, 2.0, np.nan])
    assert n_bad == 2
    assert examples == ("oops", "zz")


def test_mixed_object_column_becomes_strings_with_a_record() -> None:
    df = pd.DataFrame({"m": [1, "a", 2.5, None, "b"], "ok": [1, 2, 3, 4, 5]})
    table = read_table(df)
    assert column_to_numpy(table, "m", "categorical").tolist() == ["1", "a", "2.5", None, "b"]
    info = mixed_types_info(table.schema.field("m"))
    assert info is not None
    assert info["types"] == {"float": 1, "int": 1, "str": 2}
    assert info["main"] == "str"
    assert mixed_types_info(table.schema.field("ok")) is None


def test_datetime_conversion_is_utc_nanoseconds() -> None:
    stamps = pd.to_datetime(
        ["2024-01-01T00:00:00+01:00", None, "2024-06-01T12:00:00+00:00"], utc=True
    )
    table = read_table(pd.DataFrame({"t": stamps}))
    out = column_to_numpy(table, "t", "datetime")
    assert out.dtype == np.dtype("datetime64[ns]")
    assert str(out[0]) == "2023-12-31T23:00:00.000000000"
    assert np.isnat(out[1])
    strings = pa.table({"t": ["2024-01-01T00:00:00", "not a date", None]})
    parsed = column_to_numpy(strings, "t", "datetime")
    assert str(parsed[0]) == "2024-01-01T00:00:00.000000000"
    assert np.isnat(parsed[1])
    assert np.isnat(parsed[2])


def test_float_nan_is_missing_as_a_category() -> None:
    table = pa.table({"f": [1.0, float("nan"), None]})
    assert column_to_numpy(table, "f", "categorical").tolist() == ["1", None, None]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pd.DataFrame({"x": []}), "no rows"),
        (pd.DataFrame(), "no columns"),
        ([1, 2, 3], "cannot read data of type list"),
        ("no/such/file.csv", "does not exist"),
        ("data.xlsx", "unknown file type"),
    ],
)
def test_bad_inputs_raise_clear_errors(data: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_table(data)


def test_empty_frames_allowed_on_request() -> None:
    assert read_table(pd.DataFrame({"x": []}), allow_empty=True).num_rows == 0


def test_corrupt_file_is_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="cannot read"):
        read_table(bad)


def test_duplicate_columns_and_unknown_names() -> None:
    table = pa.table([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(InputError, match="duplicate column names"):
        read_table(table)
    with pytest.raises(InputError, match="not in the data"):
        column_to_numpy(pa.table({"a": [1]}), "b", "numeric")
    with pytest.raises(InputError, match="unknown column kind"):
        column_to_numpy(pa.table({"a": [1]}), "a", "vector")


def test_polars_lazy_frame_asks_to_collect() -> None:
    with pytest.raises(InputError, match="collect"):
        read_table(pl.DataFrame({"a": [1]}).lazy())


def test_parquet_round_trip_keeps_types(tmp_path: Path) -> None:
    table = pa.table({"a": pa.array([1, None], pa.int32()), "b": ["x", "y"]})
    pq.write_table(table, tmp_path / "t.pq")
    assert read_table(tmp_path / "t.pq").equals(table)


def test_a_pandas_index_stored_in_parquet_is_never_a_column(tmp_path: Path) -> None:
    import watchkeeper as wk
    from watchkeeper.data import Schema

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=4000), "c": rng.choice(["a", "b"], 4000)})
    sampled = frame.sample(1000, random_state=1)  # not a range index: pandas stores it
    sampled.to_parquet(tmp_path / "sampled.parquet")
    frame.sample(1000, random_state=2).to_parquet(tmp_path / "other.parquet")
    named = frame.iloc[:1000].rename_axis("row").sample(1000, random_state=3)
    named.to_parquet(tmp_path / "named.parquet")
    for path in ("sampled", "other", "named"):
        raw = pq.read_table(tmp_path / f"{path}.parquet").column_names
        assert set(raw) - {"x", "c"}, raw  # the file does hold the index
        table = read_table(tmp_path / f"{path}.parquet")
        assert table.column_names == ["x", "c"]
        back = table.to_pandas()  # the pandas metadata still matches the columns
        assert list(back.columns) == ["x", "c"]
        np.testing.assert_array_equal(back["x"].to_numpy(), pd.read_parquet(
            tmp_path / f"{path}.parquet")["x"].to_numpy())  # fmt: skip
    arrow = pa.Table.from_pandas(sampled)
    assert "__index_level_0__" in arrow.column_names
    assert read_table(arrow).column_names == ["x", "c"]
    assert Schema.infer(tmp_path / "sampled.parquet").names == ("x", "c")
    report = wk.compare(tmp_path / "sampled.parquet", tmp_path / "other.parquet")
    assert [c.name for c in report.columns] == ["x", "c"]
    assert not report.drifted
