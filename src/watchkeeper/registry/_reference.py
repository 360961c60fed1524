"""The input schema and reference profile saved with a model version.

They come from the data layer (:class:`watchkeeper.data.Schema` and
:class:`watchkeeper.data.Profile`); this module only turns them into what the registry stores
(a JSON dict in the database, the profile's own JSON file as an artifact) and back.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from watchkeeper.exceptions import InputError

__all__ = ["describe_reference", "profile_from_bytes"]

_PROFILE_FILE = "profile.json"


def describe_reference(reference: Any, schema: Any) -> tuple[dict[str, Any] | None, bytes | None]:
    """The schema (as a dict) and the serialized reference profile for a registration.

    Parameters
    ----------
    reference
        Data (anything :func:`watchkeeper.data.read_table` accepts: DataFrame, Arrow table,
        polars frame, CSV/Parquet path) or an already computed ``Profile``; ``None`` for none.
    schema
        A ``Schema``, its dict form, or ``None`` to infer it from the reference.

    Examples
    --------
    >>> import pandas as pd
    >>> schema, profile = describe_reference(pd.DataFrame({"x": [1.0, 2.0, 4.0]}), None)
    >>> [c["name"] for c in schema["columns"]], profile_from_bytes(profile).n_rows
    (['x'], 3)
    >>> describe_reference(None, None)
    (None, None)
    """
    if reference is None and schema is None:
        return None, None
    from watchkeeper.data import Profile, Schema

    declared: Schema | None
    if schema is None or isinstance(schema, Schema):
        declared = schema
    elif isinstance(schema, Mapping):
        declared = Schema.from_dict(schema)
    else:
        raise InputError(
            "schema must be a watchkeeper.data.Schema or its dict form, got "
            f"{type(schema).__name__}"
        )
    if reference is None:
        assert declared is not None
        return declared.to_dict(), None
    if isinstance(reference, Profile):
        profile = reference
        if declared is not None and declared.to_dict() != profile.schema.to_dict():
            raise InputError(
                "the reference profile was computed with another schema than the one given; "
                "pass only the profile, or recompute it with this schema"
            )
    else:
        profile = Profile.from_data(reference, declared)
    with tempfile.TemporaryDirectory(prefix="wk-profile-") as tmp:
        payload = profile.save(Path(tmp) / _PROFILE_FILE).read_bytes()
    return profile.schema.to_dict(), payload


def profile_from_bytes(payload: bytes) -> Any:
    """Rebuild the ``Profile`` that :func:`describe_reference` serialized."""
    from watchkeeper.data import Profile

    with tempfile.TemporaryDirectory(prefix="wk-profile-") as tmp:
        path = Path(tmp) / _PROFILE_FILE
        path.write_bytes(payload)
        return Profile.load(path)
