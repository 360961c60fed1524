"""ACS employment, Massachusetts 2015–2018 (US Census PUMS via folktables and nannyml; see
data/NOTICE.md)."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ACS_FEATURES", "ACS_SENSITIVE", "load_acs_employment"]

#: Columns a model may use to predict ``employed`` (the folktables ACSEmployment task).
ACS_FEATURES = (
    "AGEP", "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC", "NATIVITY",
    "DEAR", "DEYE", "DREM",
)  # fmt: skip

#: The sensitive attributes: sex (1 male, 2 female) and race (RAC1P, 1 White alone to 9 two or
#: more races).
ACS_SENSITIVE = ("SEX", "RAC1P")


def load_acs_employment() -> pd.DataFrame:
    """Whether adults and children in Massachusetts were employed, 2015–2018.

    60,000 person records of the American Community Survey (30,000 of 2015 and 30,000 of
    2016–2018), a stratified subsample of the employment task of folktables as shipped with
    nannyml. Columns: the census codes of :data:`ACS_FEATURES` and :data:`ACS_SENSITIVE` as
    pandas categories of strings (``AGEP``, the age, as a number), the label ``employed``
    (0/1) and the survey ``year``. Race groups 3, 4, 5 and 7 have fewer than 100 rows, which
    makes them the real case of groups too small to judge.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> df = load_acs_employment()
    >>> df.shape
    (60000, 18)
    >>> df["year"].value_counts().sort_index().tolist()
    [30000, 9926, 10004, 10070]
    >>> sorted(df["SEX"].unique().tolist()), int(df["RAC1P"].value_counts()["4"])
    (['1', '2'], 5)
    """
    import pandas as pd

    path = resources.files("watchkeeper.datasets").joinpath("data/acs_employment_ma.parquet")
    with resources.as_file(path) as file:
        df = pd.read_parquet(file)
    df["AGEP"] = df["AGEP"].astype("float64")
    df["employed"] = df["employed"].astype("int64")
    df["year"] = df["year"].astype("int64")
    return df
