"""watchkeeper: keep machine-learning models healthy after deployment."""

from watchkeeper._version import __version__

__all__ = ["__version__"]
