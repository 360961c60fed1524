"""SQL plumbing shared by the stores (model registry, monitor store, alert store): engines
chosen by URL, driver errors turned into clear ones, and UTC timestamps.

This is the storage layer's one home for what the stores share; it imports nothing above it.

Examples
--------
>>> from datetime import datetime
>>> from watchkeeper.storage import as_utc, safe_url
>>> as_utc(datetime(2026, 1, 1)).isoformat()
'2026-01-01T00:00:00+00:00'
>>> safe_url("postgresql://user:secret@db/wk")
'postgresql://user:***@db/wk'
"""

from __future__ import annotations

from watchkeeper.storage._engine import READ_ONLY, create_engine, db_errors, safe_url
from watchkeeper.storage._time import as_utc, now_utc

__all__ = ["READ_ONLY", "as_utc", "create_engine", "db_errors", "now_utc", "safe_url"]
