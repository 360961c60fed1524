"""JSON files written atomically and read with errors that name the file; Arrow tables as
base64 text inside them."""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from watchkeeper.exceptions import InputError

__all__ = [
    "read_json",
    "table_from_text",
    "table_to_text",
    "write_bytes_atomic",
    "write_json_atomic",
]


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as JSON to ``path`` through a temporary file, so readers never see
    half a file."""
    text = json.dumps(payload, allow_nan=False, indent=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomic(path: Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` through a temporary file, so readers never see half a
    file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Read a JSON object from ``path`` with errors that name the file."""
    if not path.is_file():
        raise InputError(f"{what} file {str(path)!r} does not exist; check the path")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"{what} file {str(path)!r} is not valid JSON (corrupted?): {exc}"
        ) from exc
    if not isinstance(payload, dict):
        raise InputError(f"{what} file {str(path)!r} does not hold a watchkeeper {what}")
    return payload


def table_to_text(table: pa.Table) -> dict[str, str]:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    data = base64.b64encode(sink.getvalue().to_pybytes()).decode("ascii")
    return {"encoding": "arrow-ipc-stream+zstd+base64", "data": data}


def table_from_text(payload: Mapping[str, str]) -> pa.Table:
    if payload.get("encoding") != "arrow-ipc-stream+zstd+base64":
        raise InputError(f"unknown sample encoding {payload.get('encoding')!r}")
    try:
        raw = base64.b64decode(payload["data"], validate=True)
    except binascii.Error as exc:
        raise InputError(f"the profile's sample is damaged: {exc}") from exc
    with pa.ipc.open_stream(pa.BufferReader(raw)) as reader:
        return reader.read_all()
