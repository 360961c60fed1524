"""The ``watchkeeper`` command line (typer + rich).

Exit codes: 0 success/clean, 1 findings (with ``--fail-on``) or a failed gate, 2 usage or
input error (one line on stderr, no traceback). Every command runs inside one error boundary
(``watchkeeper.cli._app``): an unexpected error is one line too, with the hint to rerun as
``watchkeeper --debug ...`` (or with ``WATCHKEEPER_DEBUG=1``) for its traceback.
"""

from __future__ import annotations

from watchkeeper.cli._app import app, main

__all__ = ["app", "main"]
