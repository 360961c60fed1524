"""Checking and cleaning records before they are logged.

Every record goes through here in the caller's thread (so one bad record fails its own
request, not the batch it would have shared a transaction with) and again in the sink (so a
sink used directly is just as strict). The policy for values JSON cannot hold:

- ``NaN`` and ``±inf`` anywhere in features, prediction, scores or a label are stored as
  ``null`` and *counted* (the count is returned and exported by the writer as
  ``nonfinite_total``). A non-finite input value is a missing value for monitoring, which
  counts nulls per column, so the row stays useful and the event stays visible.
- numpy scalars and arrays become Python numbers and lists (models return them all the time).
- Anything else that is not a number, string, bool, ``None``, list or string-keyed mapping
  (``datetime``, ``Decimal``, bytes, arbitrary objects) is refused with :class:`InputError`
  naming the field, because a silent ``str()`` would change the value's type in the log.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from watchkeeper.exceptions import InputError
from watchkeeper.logstore._records import FeedbackRecord, PredictionRecord

__all__ = [
    "Checked",
    "dumps",
    "encode_feedback",
    "encode_prediction",
    "normalize_feedback",
    "normalize_prediction",
    "validate_model_name",
]

# Model names end up in Parquet partition paths; same whitelist as the registry's names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

#: Compact JSON that refuses NaN (values are cleaned before they get here).
_stdlib_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode

try:  # orjson (installed with the serve extra) encodes log records about 10x faster
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only without the serve extra
    _orjson = None  # type: ignore[assignment]


def dumps(value: Any) -> str:
    """Compact JSON text of a cleaned value (see :func:`normalize_prediction`).

    Uses orjson when it is installed and falls back to the standard library for what orjson
    refuses (integers beyond 64 bits); both give the same JSON values back.

    Examples
    --------
    >>> dumps({"age": 41, "plan": "pro", "p": [0.25, None]})
    '{"age":41,"plan":"pro","p":[0.25,null]}'
    """
    if _orjson is not None:
        try:
            return str(_orjson.dumps(value), "utf-8")
        except TypeError:
            pass
    return _stdlib_dumps(value)


def _surrogate_error(where: str, text: str, exc: UnicodeEncodeError) -> InputError:
    return InputError(
        f"{where} holds a lone UTF-16 surrogate ({text[exc.start : exc.end]!r}), which is not "
        "valid Unicode and cannot be stored; send valid UTF-8 text"
    )


def _json_text(value: Any, where: str) -> str:
    """JSON text of a cleaned value, refusing what cannot be stored as UTF-8."""
    if _orjson is not None:
        try:
            return str(_orjson.dumps(value), "utf-8")
        except TypeError:
            pass  # integers beyond 64 bits, or a lone surrogate: decided below
    text = _stdlib_dumps(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _surrogate_error(where, text, exc) from None
    return text


def _text(value: str | None, where: str) -> None:
    """Refuse a string that cannot be stored as UTF-8 (a lone surrogate)."""
    if value is None or value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _surrogate_error(where, value, exc) from None


#: JSON texts of one prediction record: features, prediction, scores (``None`` for null).
PredictionTexts = tuple[str, "str | None", "str | None"]


def encode_prediction(record: PredictionRecord) -> PredictionTexts:
    """The JSON texts a sink stores for a record cleaned by :func:`normalize_prediction`.

    Encoding happens once, in the caller's thread, before the record joins a shared commit:
    a value that cannot be stored (a lone surrogate in any string) raises
    :class:`InputError` naming the field and fails only its own submission.

    Examples
    --------
    >>> r = PredictionRecord("r1", 1.7e9, "churn", 1, "champion", {"x": 1.5}, "yes")
    >>> encode_prediction(r)
    ('{"x":1.5}', '"yes"', None)
    >>> bad = PredictionRecord("r2", 1.7e9, "churn", 1, "champion", {"x": "\\ud800"}, 0)
    >>> encode_prediction(bad)
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: prediction record 'r2': features holds a lone UTF-16 \
surrogate ('\\ud800'), which is not valid Unicode and cannot be stored; send valid UTF-8 text
    """
    if (
        _orjson is not None
        and record.error is None
        and record.id.isascii()
        and record.arm.isascii()
        and record.status.isascii()
    ):
        # the common case, without building a single message: orjson refuses what it
        # cannot encode (a lone surrogate, an integer beyond 64 bits) and the path below
        # explains it or encodes it
        dumps_ = _orjson.dumps
        prediction, scores = record.prediction, record.scores
        try:
            return (
                str(dumps_(record.features), "utf-8"),
                None if prediction is None else str(dumps_(prediction), "utf-8"),
                None if scores is None else str(dumps_(scores), "utf-8"),
            )
        except TypeError:
            pass
    where = f"prediction record {record.id!r}"
    _text(record.id, "prediction record id")
    _text(record.arm, f"{where}: arm")
    _text(record.status, f"{where}: status")
    _text(record.error, f"{where}: error")
    return (
        _json_text(record.features, f"{where}: features"),
        None
        if record.prediction is None
        else _json_text(record.prediction, f"{where}: prediction"),
        None if record.scores is None else _json_text(record.scores, f"{where}: scores"),
    )


def encode_feedback(record: FeedbackRecord) -> str | None:
    """The JSON text of a cleaned feedback record's label (``None`` without one), after
    checking that every string of the record can be stored.

    Examples
    --------
    >>> encode_feedback(FeedbackRecord("r1", 1.7e9, label=[1, "a"]))
    '[1,"a"]'
    """
    where = f"feedback for {record.id!r}"
    _text(record.id, "feedback record id")
    _text(record.note, f"{where}: note")
    return None if record.label is None else _json_text(record.label, f"{where}: label")


class Checked(list[Any]):
    """Records that already went through :func:`normalize_prediction` or
    :func:`normalize_feedback`, with their JSON texts.

    The :class:`~watchkeeper.logstore.GroupCommitWriter` checks *and encodes* every record in
    the caller's thread (so a bad record fails its own request, never the shared commit) and
    hands the sink a ``Checked`` list, which the sink then neither checks nor encodes a second
    time: ``encoded[i]`` holds the texts of record ``i`` (:func:`encode_prediction` or
    :func:`encode_feedback`). A sink given a plain list checks and encodes it itself.
    """

    __slots__ = ("encoded", "nonfinite")

    def __init__(
        self, records: Any = (), nonfinite: int = 0, encoded: list[Any] | None = None
    ) -> None:
        super().__init__(records)
        self.nonfinite = nonfinite
        self.encoded: list[Any] = [] if encoded is None else encoded

    @classmethod
    def of(cls, records: Any, feedback: bool) -> Checked:
        """``records`` normalised and encoded (:class:`InputError` names the first bad one).

        Examples
        --------
        >>> done = Checked.of([FeedbackRecord("r1", 1.7e9, label=float("nan"))], feedback=True)
        >>> done[0].label, done.encoded, done.nonfinite
        (None, [None], 1)
        """
        if isinstance(records, Checked):
            return records
        normalize = normalize_feedback if feedback else normalize_prediction
        encode: Any = encode_feedback if feedback else encode_prediction
        out = cls()
        append, add = out.append, out.encoded.append
        nonfinite = 0
        for record in records:
            clean, n = normalize(record)
            append(clean)
            add(encode(clean))
            nonfinite += n
        out.nonfinite = nonfinite
        return out


_VALID_NAMES: set[str] = set()  # names already checked (a handful per process)


def validate_model_name(name: object) -> str:
    """Return ``name`` if it can be a model name in the log, else raise :class:`InputError`.

    Examples
    --------
    >>> validate_model_name("churn-v2")
    'churn-v2'
    """
    if type(name) is str and name in _VALID_NAMES:
        return name
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise InputError(
            f"invalid model name {name!r} in a log record: use 1-128 characters from letters, "
            "digits, '.', '_' and '-', starting with a letter or digit"
        )
    if len(_VALID_NAMES) < 10_000:
        _VALID_NAMES.add(name)
    return name


_PLAIN = frozenset({str, int, bool, type(None)})
_isfinite = math.isfinite


def _is_plain_dict(value: Any) -> bool:
    """A dict of string keys to plain finite scalars: the common case, checked quickly."""
    for key, item in value.items():
        kind = type(item)
        if type(key) is not str or not (kind in _PLAIN or (kind is float and _isfinite(item))):
            return False
    return True


def _clean(value: Any, where: str) -> tuple[Any, int]:
    """``value`` with non-finite floats as ``None`` and numpy values as Python ones.

    Returns the cleaned value (the same object when nothing changed) and how many
    non-finite floats were replaced.
    """
    if type(value) is dict and _is_plain_dict(value):
        return value, 0
    if value is None or isinstance(value, str | bool | int):
        return value, 0
    if isinstance(value, float):
        return (value, 0) if math.isfinite(value) else (None, 1)
    if isinstance(value, np.generic | np.ndarray):
        return _clean(value.tolist(), where)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        changed, bad = not isinstance(value, dict), 0
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(
                    f"{where} has the key {key!r} of type {type(key).__name__}; "
                    "log records need string keys (JSON objects)"
                )
            clean, n = _clean(item, f"{where}[{key!r}]")
            changed = changed or clean is not item
            bad += n
            out[key] = clean
        return (out if changed else value), bad
    if isinstance(value, list | tuple):
        items, changed, bad = [], isinstance(value, tuple), 0
        for i, item in enumerate(value):
            clean, n = _clean(item, f"{where}[{i}]")
            changed = changed or clean is not item
            bad += n
            items.append(clean)
        return (items if changed else value), bad
    raise InputError(
        f"{where} is a {type(value).__name__} ({value!r:.60}), which the prediction log cannot "
        "store; convert it to a number, string, bool, list or dict first (e.g. "
        "datetime.isoformat())"
    )


def _finite_seconds(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{where} must be a finite number of UTC seconds, got {value!r}")
    return float(value)


def _nonempty_str(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _is_clean(r: Any) -> bool:
    """True when ``r`` needs no cleaning: the common case (a gateway's record of plain JSON
    values), checked with exact types in one pass; anything else takes the full path."""
    return (
        type(r) is PredictionRecord
        and type(r.id) is str
        and r.id != ""
        and type(r.ts) is float
        and _isfinite(r.ts)
        and type(r.model) is str
        and r.model in _VALID_NAMES
        and type(r.version) is int
        and type(r.arm) is str
        and r.arm != ""
        and type(r.status) is str
        and r.status != ""
        and type(r.shadow) is bool
        and r.error is None
        and type(r.latency_ms) is float
        and _isfinite(r.latency_ms)
        and r.latency_ms >= 0
        and type(r.features) is dict
        and _is_plain_dict(r.features)
        and (
            type(r.prediction) in _PLAIN
            or (type(r.prediction) is float and _isfinite(r.prediction))
        )
        and (r.scores is None or (type(r.scores) is dict and _is_plain_dict(r.scores)))
    )


def normalize_prediction(record: object) -> tuple[PredictionRecord, int]:
    """Check ``record`` and return it cleaned, with the number of non-finite values nulled.

    Raises :class:`InputError` naming the field when the record cannot be logged.

    Examples
    --------
    >>> r = PredictionRecord("r1", 1.7e9, "churn", 1, "champion", {"x": float("nan")}, 0)
    >>> clean, n_nonfinite = normalize_prediction(r)
    >>> clean.features, n_nonfinite
    ({'x': None}, 1)
    """
    if _is_clean(record):
        return record, 0  # type: ignore[return-value]
    if not isinstance(record, PredictionRecord):
        raise InputError(
            f"expected a PredictionRecord, got {type(record).__name__}; build one with "
            "watchkeeper.logstore.PredictionRecord(id=..., ts=..., model=..., ...)"
        )
    where = f"prediction record {record.id!r}"
    _nonempty_str(record.id, "prediction record id")
    _finite_seconds(record.ts, f"{where}: ts")
    validate_model_name(record.model)
    if isinstance(record.version, bool) or not isinstance(record.version, int | np.integer):
        raise InputError(f"{where}: version must be an integer, got {record.version!r}")
    _nonempty_str(record.arm, f"{where}: arm")
    _nonempty_str(record.status, f"{where}: status")
    if not isinstance(record.shadow, bool | np.bool_):
        raise InputError(f"{where}: shadow must be True or False, got {record.shadow!r}")
    if record.error is not None and not isinstance(record.error, str):
        raise InputError(f"{where}: error must be a string or None, got {record.error!r}")
    latency = _finite_seconds(record.latency_ms, f"{where}: latency_ms")
    if latency < 0:
        raise InputError(f"{where}: latency_ms must be >= 0, got {latency!r}")
    if not isinstance(record.features, Mapping):
        raise InputError(
            f"{where}: features must be a mapping of feature name to value, "
            f"got {type(record.features).__name__}"
        )
    features, n_features = _clean(record.features, f"{where}: features")
    prediction, n_prediction = _clean(record.prediction, f"{where}: prediction")
    scores, n_scores = record.scores, 0
    if scores is not None:
        if not isinstance(scores, Mapping):
            raise InputError(
                f"{where}: scores must be a mapping of class to probability or None, "
                f"got {type(scores).__name__}"
            )
        scores, n_scores = _clean(scores, f"{where}: scores")
    changed = (
        features is not record.features
        or prediction is not record.prediction
        or scores is not record.scores
        or type(record.version) is not int
        or type(record.shadow) is not bool
        or type(record.ts) is not float
        or type(record.latency_ms) is not float
    )
    if changed:
        record = replace(
            record,
            ts=float(record.ts),
            version=int(record.version),
            shadow=bool(record.shadow),
            latency_ms=latency,
            features=features,
            prediction=prediction,
            scores=scores,
        )
    return record, n_features + n_prediction + n_scores


def normalize_feedback(record: object) -> tuple[FeedbackRecord, int]:
    """Check a feedback record and return it cleaned, with the number of non-finite values.

    Examples
    --------
    >>> normalize_feedback(FeedbackRecord("r1", 1.7e9, label=1))
    (FeedbackRecord(id='r1', ts=1700000000.0, label=1, flag=None, note=None, model=None), 0)
    """
    if not isinstance(record, FeedbackRecord):
        raise InputError(
            f"expected a FeedbackRecord, got {type(record).__name__}; build one with "
            "watchkeeper.logstore.FeedbackRecord(id=..., ts=..., label=...)"
        )
    _nonempty_str(record.id, "feedback record id")
    where = f"feedback for {record.id!r}"
    ts = _finite_seconds(record.ts, f"{where}: ts")
    if record.flag is not None and not isinstance(record.flag, bool | np.bool_):
        raise InputError(f"{where}: flag must be True, False or None, got {record.flag!r}")
    if record.note is not None and not isinstance(record.note, str):
        raise InputError(f"{where}: note must be a string or None, got {record.note!r}")
    if record.model is not None:
        validate_model_name(record.model)
    label, n_label = _clean(record.label, f"{where}: label")
    flag = None if record.flag is None else bool(record.flag)
    if label is not record.label or type(record.ts) is not float or flag is not record.flag:
        record = replace(record, ts=ts, label=label, flag=flag)
    return record, n_label
