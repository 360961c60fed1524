"""Mergeable sketches behind profiles: KLL quantiles, HLL distinct counts, bottom-k row samples.

Row sample
----------
Each row gets a 64-bit *priority*, a seeded hash of its content (the canonical values that the
profile sees, so a pandas frame and the same data read from CSV get the same priorities). The
sample of a batch is the ``k`` rows with the smallest priorities ("bottom-k" sampling). Because
a row's priority does not depend on which batch it came in, the bottom-k of ``a ++ b`` is the
bottom-k of the union of the two samples: ``profile(a ++ b).sample`` equals
``profile(a).merge(profile(b)).sample`` exactly, and a merged sample is a uniform sample of all
rows profiled with the same seed. Priorities behave as independent uniform draws for distinct
rows (different batches do not reuse the same random numbers, as a per-batch ``rng`` would).

Identical rows share one priority, so duplicates enter the sample together: every row still has
the same chance to be sampled, but a value repeated many times comes in as a cluster.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

__all__ = [
    "HLL_LG_K",
    "KLL_K",
    "bottom_k",
    "hll_from_bytes",
    "hll_merge",
    "hll_merge_all",
    "hll_new",
    "hll_to_bytes",
    "kll_from_bytes",
    "kll_merge",
    "kll_merge_all",
    "kll_new",
    "kll_to_bytes",
    "row_priorities",
]

#: KLL accuracy parameter: the normalized rank error of a quantile is about 1.33% (99%
#: confidence), see :meth:`NumericColumnProfile.quantile_rank_error`.
KLL_K = 200
#: HLL register count is ``2**HLL_LG_K``: relative standard error about 1.6%.
HLL_LG_K = 12


def _ds() -> Any:
    import datasketches

    return datasketches


def kll_new(values: NDArray[np.float64] | None = None) -> Any:
    """A KLL doubles sketch, updated with finite ``values`` (vectorised)."""
    sketch = _ds().kll_doubles_sketch(KLL_K)
    if values is not None and values.size:
        values = np.ascontiguousarray(values, dtype=np.float64)
        # The binding only takes writeable arrays; Arrow memory is read-only.
        sketch.update(values if values.flags.writeable else values.copy())
    return sketch


def kll_merge(a: Any, b: Any) -> Any:
    """A new sketch holding both inputs (inputs untouched)."""
    out = _ds().kll_doubles_sketch.deserialize(a.serialize())  # a copy, without base64
    out.merge(b)
    return out


def kll_merge_all(sketches: Sequence[Any]) -> Any:
    """A new sketch holding every input (one copy, then in-place merges; inputs untouched)."""
    out = _ds().kll_doubles_sketch.deserialize(sketches[0].serialize())
    for s in sketches[1:]:
        out.merge(s)
    return out


def kll_to_bytes(sketch: Any) -> str:
    return base64.b64encode(sketch.serialize()).decode("ascii")


def kll_from_bytes(text: str) -> Any:
    return _ds().kll_doubles_sketch.deserialize(base64.b64decode(text, validate=True))


def hll_new(values: Sequence[Any] = ()) -> Any:
    """An HLL sketch of the distinct ``values`` (pass each distinct value once: cheaper)."""
    ds = _ds()
    sketch = ds.hll_sketch(HLL_LG_K, ds.tgt_hll_type.HLL_8)
    for v in values:
        sketch.update(v)
    return sketch


def hll_merge(a: Any, b: Any) -> Any:
    ds = _ds()
    union = ds.hll_union(HLL_LG_K)
    union.update(a)
    union.update(b)
    return union.get_result(ds.tgt_hll_type.HLL_8)


def hll_merge_all(sketches: Sequence[Any]) -> Any:
    """One union of every input sketch."""
    ds = _ds()
    union = ds.hll_union(HLL_LG_K)
    for s in sketches:
        union.update(s)
    return union.get_result(ds.tgt_hll_type.HLL_8)


def hll_to_bytes(sketch: Any) -> str:
    return base64.b64encode(sketch.serialize_compact()).decode("ascii")


def hll_from_bytes(text: str) -> Any:
    return _ds().hll_sketch.deserialize(base64.b64decode(text, validate=True))


# -- row priorities --------------------------------------------------------------------------

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_NULL = np.uint64(0x9E3779B97F4A7C15)
_NAN_BITS = np.float64(np.nan).view(np.uint64)


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64 finalizer (Steele et al. 2014): a bijection that scrambles all bits."""
    x = x ^ (x >> np.uint64(30))
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def _salt(seed: int, label: str) -> np.uint64:
    digest = hashlib.blake2b(
        label.encode("utf-8"), digest_size=8, key=str(seed).encode("ascii")
    ).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def _hash_float(values: NDArray[np.float64]) -> NDArray[np.uint64]:
    # +0.0 folds -0.0 into 0.0; every NaN (missing) gets the same bits.
    bits = (np.asarray(values, dtype=np.float64) + 0.0).view(np.uint64).copy()
    bits[np.isnan(values)] = _NAN_BITS
    return bits


def _hash_strings(column: pa.ChunkedArray, seed: int) -> NDArray[np.uint64]:
    import pandas as pd

    encoded = pc.dictionary_encode(column.combine_chunks() if column.num_chunks else column)
    uniques = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    # Hash each distinct string once (SipHash keyed by the seed), then gather by code.
    key = f"{seed % 2**64:016x}"
    hashed = pd.util.hash_array(uniques, hash_key=key, categorize=False)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    table = np.append(np.asarray(hashed, dtype=np.uint64), _NULL)
    out: NDArray[np.uint64] = table[codes]
    return out


def _hash_lists(column: pa.ChunkedArray) -> NDArray[np.uint64]:
    """Hash of each list of numbers from its elements and their positions (vectorised)."""
    arr = column.combine_chunks()
    n = len(arr)
    lengths = np.asarray(pc.list_value_length(arr).fill_null(0).to_numpy(), dtype=np.int64)
    out = np.full(n, _NULL, dtype=np.uint64)
    filled = lengths > 0
    out[~filled & np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)] = _M1
    if not filled.any():
        return out
    flat = pc.list_flatten(arr)
    values = np.asarray(pc.cast(flat, pa.float64()).to_numpy(zero_copy_only=False))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    position = np.arange(values.size, dtype=np.int64) - np.repeat(starts, lengths)
    with np.errstate(over="ignore"):
        element = _mix(_hash_float(values) ^ (position.astype(np.uint64) * _M2))
        out[filled] = _mix(np.bitwise_xor.reduceat(element, starts[filled]))
    return out


def column_hash(canonical: pa.ChunkedArray | pa.Array, seed: int) -> NDArray[np.uint64]:
    """Seeded 64-bit hash of each value of a canonical column (see :func:`row_priorities`)."""
    if isinstance(canonical, pa.Array):
        canonical = pa.chunked_array([canonical])
    t = canonical.type
    n = len(canonical)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    if pa.types.is_floating(t):
        return _hash_float(np.asarray(canonical.to_numpy(), dtype=np.float64))
    if pa.types.is_timestamp(t):
        ints = pc.cast(canonical, pa.int64())
        bits = np.asarray(ints.fill_null(0).to_numpy(), dtype=np.int64).view(np.uint64).copy()
        bits[np.asarray(pc.is_null(ints).to_numpy(zero_copy_only=False), dtype=bool)] = _NULL
        return bits
    if pa.types.is_string(t):
        return _hash_strings(canonical, seed)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _hash_lists(canonical)
    raise TypeError(f"no canonical hash for Arrow type {t}")


def row_priorities(
    columns: dict[str, pa.ChunkedArray], n_rows: int, seed: int
) -> NDArray[np.uint64]:
    """Seeded priority of each row from its canonical column values.

    Column hashes are combined with XOR after salting by column name, so the priority does not
    depend on the column order; equal rows (under the canonical forms) get equal priorities.
    """
    acc = np.zeros(n_rows, dtype=np.uint64)
    for name, column in columns.items():
        h = column_hash(column, seed) + _salt(seed, name)
        acc ^= _mix(h)
    return _mix(acc ^ _salt(seed, "\x00rows"))


def bottom_k(priorities: NDArray[np.uint64], k: int) -> NDArray[np.intp]:
    """Indices of the ``k`` smallest priorities, in increasing priority order (stable)."""
    if k <= 0:
        return np.zeros(0, dtype=np.intp)
    if priorities.size > k:
        candidates = np.argpartition(priorities, k - 1)[:k]
        candidates.sort()
        order = np.argsort(priorities[candidates], kind="stable")
        return candidates[order]
    return np.argsort(priorities, kind="stable")
