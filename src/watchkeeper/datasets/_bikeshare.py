"""Capital Bikeshare hourly rentals, 2011 (UCI, CC BY 4.0; see data/NOTICE.md)."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BIKESHARE_FEATURES", "load_bikeshare"]

#: Columns a model may use to predict ``bikers`` (``casual`` and ``registered`` add up to
#: the target and would leak it; ``season`` and ``mnth`` encode the calendar, which drifts by
#: construction).
BIKESHARE_FEATURES = (
    "hr",
    "weekday",
    "workingday",
    "holiday",
    "weathersit",
    "temp",
    "atemp",
    "hum",
    "windspeed",
)

_MONTHS = {
    "Jan": 1, "Feb": 2, "March": 3, "April": 4, "May": 5, "June": 6,
    "July": 7, "Aug": 8, "Sept": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}  # fmt: skip


def load_bikeshare() -> pd.DataFrame:
    """Hourly bike rentals in Washington, D.C. during 2011, with weather.

    8,645 rows (a few hours are missing from the source), one per hour, in time order, with a
    ``timestamp`` column built from the day of the year and the hour, and ``month`` as a number.
    The target is ``bikers`` (rentals in that hour). Temperature, humidity and demand change
    strongly with the seasons, which makes the data a real example of drift.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> df = load_bikeshare()
    >>> df.shape
    (8645, 16)
    >>> int(df.groupby("month")["temp"].mean().idxmax())  # July is the warmest month
    7
    """
    import pandas as pd

    path = resources.files("watchkeeper.datasets").joinpath("data/bikeshare.csv.gz")
    with resources.as_file(path) as file:
        df = pd.read_csv(file, compression="gzip")
    df["month"] = df["mnth"].map(_MONTHS).astype("int64")
    df["weathersit"] = df["weathersit"].astype("str")
    start = pd.Timestamp("2011-01-01")
    df.insert(
        0,
        "timestamp",
        start + pd.to_timedelta(df["day"] - 1, unit="D") + pd.to_timedelta(df["hr"], unit="h"),
    )
    return df.drop(columns=["mnth"]).reset_index(drop=True)
