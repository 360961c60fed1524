"""The main job behind ``make demo``: watchkeeper end to end on real bundled data."""

from watchkeeper.demo._main import main

__all__ = ["main"]
