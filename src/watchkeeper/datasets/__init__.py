"""Real datasets that ship inside the package (no download at run time)."""

from watchkeeper.datasets._acs import ACS_FEATURES, ACS_SENSITIVE, load_acs_employment
from watchkeeper.datasets._bikeshare import BIKESHARE_FEATURES, load_bikeshare

__all__ = [
    "ACS_FEATURES",
    "ACS_SENSITIVE",
    "BIKESHARE_FEATURES",
    "load_acs_employment",
    "load_bikeshare",
]
