"""The input schema and reference profile saved with a model version.

They come from the data layer (``watchkeeper.data.Schema`` and ``Profile``); this module only
turns them into what the registry stores (a JSON dict, profile bytes) and back.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from watchkeeper.exceptions import InputError

__all__ = ["describe_reference", "profile_from_bytes"]

_PROFILE_FILE = "profile.json"


def _profile_class() -> Any:
    from watchkeeper import data

    profile = getattr(data, "Profile", None)
    if profile is None:
        raise InputError(
            "this watchkeeper build has no watchkeeper.data.Profile, so no reference profile "
            "can be stored; register without reference= or upgrade watchkeeper"
        )
    return profile


def describe_reference(reference: Any, schema: Any) -> tuple[dict[str, Any] | None, bytes | None]:
    """The schema (as a dict) and the serialized profile for a registration.

    ``reference`` is data (DataFrame, Arrow table, polars frame, CSV/Parquet path) or an
    already computed ``Profile``; ``schema`` a ``Schema``, its dict form, or ``None`` to infer
    it from the reference data.

    Examples
    --------
    >>> describe_reference(None, None)
    (None, None)
    """
    from watchkeeper.data import Schema

    declared: Any = None
    if schema is not None:
        if isinstance(schema, Schema):
            declared = schema
        elif isinstance(schema, Mapping):
            declared = Schema.from_dict(schema)
        else:
            raise InputError(
                f"schema must be a watchkeeper.data.Schema or its dict form, got "
                f"{type(schema).__name__}"
            )
    if reference is None:
        return (None if declared is None else declared.to_dict()), None
    profile_cls = _profile_class()
    if isinstance(reference, profile_cls):
        profile = reference
        if declared is None:
            declared = getattr(profile, "schema", None)
    else:
        if declared is None:
            declared = Schema.infer(reference)
        profile = profile_cls.from_data(reference, declared)
    with tempfile.TemporaryDirectory(prefix="wk-profile-") as tmp:
        path = Path(tmp) / _PROFILE_FILE
        profile.save(path)
        payload = path.read_bytes()
    return (None if declared is None else declared.to_dict()), payload


def profile_from_bytes(payload: bytes) -> Any:
    """Rebuild a ``Profile`` from the bytes :func:`describe_reference` produced."""
    profile_cls = _profile_class()
    with tempfile.TemporaryDirectory(prefix="wk-profile-") as tmp:
        path = Path(tmp) / _PROFILE_FILE
        path.write_bytes(payload)
        return profile_cls.load(path)
