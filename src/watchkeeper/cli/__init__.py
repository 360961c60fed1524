"""The ``watchkeeper`` command line (typer + rich).

Exit codes: 0 success/clean, 1 findings (with ``--fail-on``) or a failed gate, 2 usage or
input error (one line on stderr, no traceback).
"""

from __future__ import annotations

from watchkeeper.cli._app import app, main

__all__ = ["app", "main"]
