"""Where a model came from: who registered it, from which code, trained on which data."""

from __future__ import annotations

import getpass
import hashlib
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper.exceptions import InputError

__all__ = ["code_version", "data_fingerprint", "default_actor"]


def default_actor() -> str:
    """``user@host`` of the current process.

    Examples
    --------
    >>> "@" in default_actor()
    True
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no USER variable and no passwd entry (some containers)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def code_version(folder: str | Path | None = None) -> str | None:
    """Git commit of ``folder`` (default: the working directory), ``+dirty`` if modified.

    ``None`` outside a git checkout or without git.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     code_version(tmp) is None
    True
    """
    git = shutil.which("git")
    if git is None:
        return None
    where = str(folder or Path.cwd())

    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(
                [git, *args], cwd=where, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if not commit:
        return None
    changes = run("status", "--porcelain", "--untracked-files=no")
    return f"{commit}+dirty" if changes else commit


def data_fingerprint(data: Any) -> str:
    """``sha256:<hex>`` identifying a table, an array or a file's bytes.

    Tables hash column names, dtypes and row contents (not the index), so the same data read
    twice gives the same fingerprint and any changed cell gives another.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]})
    >>> data_fingerprint(df) == data_fingerprint(df.copy())
    True
    >>> data_fingerprint(df) == data_fingerprint(df.assign(x=[1.0, 2.5]))
    False
    """
    import pandas as pd

    digest = hashlib.sha256()
    if isinstance(data, str | Path):
        path = Path(data)
        if not path.is_file():
            raise InputError(f"training data file {str(path)!r} does not exist")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return f"sha256:{digest.hexdigest()}"
    if not isinstance(data, pd.DataFrame | np.ndarray) and hasattr(data, "to_pandas"):
        data = data.to_pandas()  # Arrow tables, polars frames
    if isinstance(data, np.ndarray) and data.dtype != object:
        array = np.ascontiguousarray(data)
        digest.update(f"ndarray|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
        return f"sha256:{digest.hexdigest()}"
    if isinstance(data, np.ndarray):
        data = pd.DataFrame(data)
    if not isinstance(data, pd.DataFrame):
        raise InputError(
            f"cannot fingerprint training data of type {type(data).__name__}; pass a "
            "DataFrame, an Arrow table, a numpy array or a file path"
        )
    for column, dtype in data.dtypes.items():
        digest.update(f"{column!s}|{dtype!s}|".encode())
    digest.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"
