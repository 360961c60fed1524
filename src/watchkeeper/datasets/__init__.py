"""Real datasets that ship inside the package (no download at run time)."""

from watchkeeper.datasets._bikeshare import BIKESHARE_FEATURES, load_bikeshare

__all__ = ["BIKESHARE_FEATURES", "load_bikeshare"]
