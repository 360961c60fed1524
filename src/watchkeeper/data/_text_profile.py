"""Profile of a free-text column: counts, per-document descriptors, a bounded vocabulary and
document presence of hashed word buckets.

Everything here is computed on the fly from the strings; no model is loaded.

- **Descriptors** (one value per document, each profiled as a numeric column on the
  reference's quantile bins): ``length`` (characters), ``words`` (word tokens),
  ``oov_share`` (share of the document's words outside the reference vocabulary; missing for a
  document without words) and ``non_letter_share`` (share of characters that are not letters;
  missing for an empty document).
- **Vocabulary**: the reference's :data:`VOCABULARY_SIZE` most frequent words (ties by the
  word) in half of its documents (chosen by a stable hash of the text), with their counts in
  this batch; current profiles count the reference's words. The reference's ``oov_share``
  is that of the other half, so that it is not favoured by a vocabulary chosen on it.
- **Hashed bag of words**: every word is hashed (SipHash with a fixed key: the same bucket in
  every process and on every Spark worker) into :data:`N_BUCKETS` buckets; the profile keeps
  the documents containing each bucket and each pair of buckets, which add up over batches
  and feed :func:`watchkeeper.stats.presence_test` (documents, not words, are the sampling
  unit).

Words are the maximal runs of Unicode letters and digits of the lower-cased text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from watchkeeper.data._numeric_profile import NumericColumnProfile
from watchkeeper.data._sketch import hll_from_bytes, hll_merge_all, hll_new, hll_to_bytes
from watchkeeper.exceptions import InputError

__all__ = ["DESCRIPTORS", "N_BUCKETS", "VOCABULARY_SIZE", "TextColumnProfile", "text_features"]

#: Words kept in a reference profile's vocabulary (the most frequent ones).
VOCABULARY_SIZE = 1_000
#: Buckets of the hashed bag of words.
N_BUCKETS = 64
#: The per-document descriptors, in the order they are reported.
DESCRIPTORS = ("length", "words", "oov_share", "non_letter_share")
#: SipHash key of the word buckets (16 bytes; fixed so buckets agree across processes).
_HASH_KEY = "watchkeeper.bow1"
_WORD_SPLIT = r"[^\pL\pN]+"
#: Documents per block when the bucket pair counts are accumulated (bounds memory).
_BLOCK = 65_536


@dataclass(frozen=True)
class TextFeatures:
    """What one batch of strings contributes to a text profile."""

    descriptors: dict[str, NDArray[np.float64]]
    vocabulary: tuple[str, ...]
    vocabulary_counts: tuple[int, ...]
    n_words: int
    bucket_documents: NDArray[np.int64]
    bucket_pairs: NDArray[np.int64]


def _tokens(present: pa.Array) -> tuple[pa.Array, NDArray[np.int64]]:
    """Word tokens of the present strings and the document index of each."""
    lists = pc.split_pattern_regex(pc.utf8_lower(present), pattern=_WORD_SPLIT)
    lengths = np.asarray(pc.list_value_length(lists).to_numpy(zero_copy_only=False))
    flat = pc.list_flatten(lists)
    doc = np.repeat(np.arange(len(present), dtype=np.int64), lengths.astype(np.int64))
    keep = pc.not_equal(pc.utf8_length(flat), 0)
    return flat.filter(keep), doc[np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)]


def _top_words(tokens: pa.Array, k: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    if len(tokens) == 0:
        return (), ()
    vc = pc.value_counts(tokens)
    words = vc.field(0).to_pylist()
    counts = np.asarray(vc.field(1).to_numpy(), dtype=np.int64)
    order = sorted(range(len(words)), key=lambda i: (-counts[i], words[i]))[:k]
    return tuple(str(words[i]) for i in order), tuple(int(counts[i]) for i in order)


def _word_counts(tokens: pa.Array, vocabulary: tuple[str, ...]) -> tuple[int, ...]:
    if not vocabulary:
        return ()
    index = pc.index_in(tokens, value_set=pa.array(vocabulary, type=pa.string()))
    idx = np.asarray(index.drop_null().to_numpy(), dtype=np.int64)
    return tuple(int(c) for c in np.bincount(idx, minlength=len(vocabulary)))


def word_buckets(words: pa.Array | list[str]) -> NDArray[np.int64]:
    """The hashed bucket of each word (stable across processes and machines).

    Examples
    --------
    >>> word_buckets(["drift", "watch", "drift"]).tolist() == [word_buckets(["drift"])[0],
    ...     word_buckets(["watch"])[0], word_buckets(["drift"])[0]]
    True
    """
    import pandas as pd

    arr = pa.array(words, type=pa.string()) if isinstance(words, list) else words
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    encoded = pc.dictionary_encode(arr)
    uniques = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    hashed = np.asarray(
        pd.util.hash_array(uniques, hash_key=_HASH_KEY, categorize=False), dtype=np.uint64
    )
    buckets = (hashed % np.uint64(N_BUCKETS)).astype(np.int64)
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    out: NDArray[np.int64] = buckets[codes]
    return out


def _presence(
    tokens: pa.Array, doc: NDArray[np.int64], n_docs: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Documents containing each bucket, and each pair of buckets."""
    pairs = np.zeros((N_BUCKETS, N_BUCKETS), dtype=np.int64)
    if len(tokens) == 0:
        return np.zeros(N_BUCKETS, dtype=np.int64), pairs
    cell = np.unique(doc * N_BUCKETS + word_buckets(tokens))
    rows, cols = np.divmod(cell, N_BUCKETS)  # sorted by document
    for start in range(0, n_docs, _BLOCK):
        lo, hi = np.searchsorted(rows, [start, start + _BLOCK])
        block = np.zeros((min(_BLOCK, n_docs - start), N_BUCKETS), dtype=np.float64)
        block[rows[lo:hi] - start, cols[lo:hi]] = 1.0
        pairs += np.rint(block.T @ block).astype(np.int64)
    return np.diag(pairs).copy(), pairs


def text_features(
    strings: pa.ChunkedArray, vocabulary: tuple[str, ...] | None, *, hold_out: bool = False
) -> TextFeatures:
    """Descriptors, vocabulary counts and bucket presence of the present strings.

    ``vocabulary`` is the reference's (``None``: this batch is the reference, and its own most
    frequent words become the vocabulary). ``hold_out`` measures ``oov_share`` only on the
    documents outside the vocabulary-choosing half (the second pass of a profile made without
    a reference, whose vocabulary came from these very documents).
    """
    present = strings.drop_null()
    present = present.combine_chunks() if isinstance(present, pa.ChunkedArray) else present
    if len(present) == 0:
        present = pa.array([], type=pa.string())
    n_docs = len(present)
    tokens, doc = _tokens(present)
    fit = np.zeros(n_docs, dtype=bool)
    if vocabulary is None:
        # The vocabulary is chosen on half of the documents and the out-of-vocabulary shares
        # of the reference are those of the other half: a vocabulary chosen on a document
        # favours it (its rare words are in the vocabulary because it used them), which
        # would make the reference look more "in vocabulary" than new data from the same
        # source.
        fit = _fitting_half(present)
        if fit.all() or not fit.any():
            fit[:] = True
        on_fit = fit[doc] if len(tokens) else np.zeros(0, dtype=bool)
        vocabulary, _ = _top_words(tokens.filter(pa.array(on_fit)), VOCABULARY_SIZE)
    elif hold_out:
        fit = _fitting_half(present)
    counts = _word_counts(tokens, vocabulary)
    words = np.bincount(doc, minlength=n_docs).astype(np.float64)
    oov = np.zeros(n_docs, dtype=np.float64)
    if len(tokens):
        known = pc.is_in(tokens, value_set=pa.array(vocabulary, type=pa.string()))
        outside = ~np.asarray(known.to_numpy(zero_copy_only=False), dtype=bool)
        oov = np.bincount(doc[outside], minlength=n_docs).astype(np.float64)
    length = np.asarray(pc.utf8_length(present).to_numpy(zero_copy_only=False), dtype=np.float64)
    letters = np.asarray(
        pc.count_substring_regex(present, pattern=r"\pL").to_numpy(zero_copy_only=False),
        dtype=np.float64,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        oov_share = np.where(words > 0, oov / words, np.nan)
        non_letter = np.where(length > 0, (length - letters) / length, np.nan)
    if not fit.all():
        oov_share[fit] = np.nan
    documents, pairs = _presence(tokens, doc, n_docs)
    return TextFeatures(
        descriptors={
            "length": length,
            "words": words,
            "oov_share": oov_share,
            "non_letter_share": non_letter,
        },
        vocabulary=tuple(vocabulary),
        vocabulary_counts=tuple(counts),
        n_words=len(tokens),
        bucket_documents=documents,
        bucket_pairs=pairs,
    )


def holds_out_vocabulary(strings: pa.ChunkedArray) -> bool:
    """Whether a vocabulary chosen on ``strings`` is chosen on half of them (both halves
    have documents)."""
    present = strings.drop_null()
    if len(present) == 0:
        return False
    fit = _fitting_half(present.combine_chunks())
    return bool(fit.any() and not fit.all())


def _fitting_half(present: pa.Array) -> NDArray[np.bool_]:
    """Documents that choose the reference vocabulary: half of them, by a stable hash of the
    text (equal documents fall in the same half)."""
    import pandas as pd

    values = np.asarray(present.to_numpy(zero_copy_only=False), dtype=object)
    hashed = np.asarray(
        pd.util.hash_array(values, hash_key=_HASH_KEY, categorize=True), dtype=np.uint64
    )
    out: NDArray[np.bool_] = (hashed >> np.uint64(63)) == 0
    return out


def _triangle(pairs: NDArray[np.int64]) -> tuple[int, ...]:
    return tuple(int(v) for v in pairs[np.triu_indices(N_BUCKETS)])


def _square(triangle: tuple[int, ...]) -> NDArray[np.int64]:
    out = np.zeros((N_BUCKETS, N_BUCKETS), dtype=np.int64)
    out[np.triu_indices(N_BUCKETS)] = triangle
    return out + np.triu(out, 1).T


@dataclass(frozen=True)
class TextColumnProfile:
    """Mergeable summary of a free-text column (see the module notes for the descriptors,
    vocabulary and word buckets).

    Attributes
    ----------
    count, n_missing
        Present and missing values (documents).
    total_length
        Characters of the present values.
    descriptors
        Numeric profile of each descriptor (``length``, ``words``, ``oov_share``,
        ``non_letter_share``) on the reference's bins; empty in profiles written before
        text descriptors existed.
    vocabulary, vocabulary_counts
        The reference's most frequent words and their counts in this batch.
    n_words
        Word tokens in this batch.
    bucket_documents
        Documents containing each word bucket (length :data:`N_BUCKETS`, or empty).
    bucket_pairs
        Documents containing each pair of buckets: the upper triangle (diagonal included) of
        the symmetric matrix, row by row.
    sketch
        HLL sketch of the distinct values.

    Examples
    --------
    >>> import pyarrow as pa
    >>> col = TextColumnProfile.from_strings(pa.chunked_array([["Hello there", "hi", None]]))
    >>> col.count, col.n_missing, col.mean_length, col.n_distinct, col.n_words
    (2, 1, 6.5, 2, 3)
    >>> col.descriptors["words"].mean, col.vocabulary
    (1.5, ('hello', 'hi', 'there'))
    """

    kind: ClassVar[str] = "text"

    count: int
    n_missing: int
    total_length: int
    sketch: Any = field(default=None, compare=False, repr=False)
    descriptors: Mapping[str, NumericColumnProfile] = field(default_factory=dict, repr=False)
    vocabulary: tuple[str, ...] = field(default=(), repr=False)
    vocabulary_counts: tuple[int, ...] = field(default=(), repr=False)
    n_words: int = 0
    bucket_documents: tuple[int, ...] = field(default=(), repr=False)
    bucket_pairs: tuple[int, ...] = field(default=(), repr=False)
    #: Set on the skeleton reference of a profile made without a reference (see
    #: :func:`text_features`'s ``hold_out``); never on profiles that users keep.
    recount_held_out: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def from_strings(
        cls,
        strings: pa.ChunkedArray,
        *,
        reference: TextColumnProfile | None = None,
        n_bins: int = 10,
    ) -> TextColumnProfile:
        """Profile canonical string values (null = missing); with ``reference``, on its
        vocabulary and descriptor bins."""
        n_missing = int(strings.null_count)
        present = len(strings) - n_missing
        total = pc.sum(pc.utf8_length(strings)).as_py() if present else 0
        distinct = pc.unique(strings).drop_null().to_pylist() if present else []
        base = cls(
            count=present, n_missing=n_missing, total_length=int(total or 0),
            sketch=hll_new(distinct),
        )  # fmt: skip
        if reference is not None and not reference.has_features:
            return base  # a reference from before descriptors: nothing to align with
        features = text_features(
            strings,
            None if reference is None else reference.vocabulary,
            hold_out=reference is not None and reference.recount_held_out,
        )
        descriptors = {
            name: NumericColumnProfile.from_values(
                features.descriptors[name],
                n_bins=n_bins,
                reference=None if reference is None else reference.descriptors[name],
                sketch=False,
            )
            for name in DESCRIPTORS
        }
        return TextColumnProfile(
            count=base.count,
            n_missing=base.n_missing,
            total_length=base.total_length,
            sketch=base.sketch,
            descriptors=descriptors,
            vocabulary=features.vocabulary,
            vocabulary_counts=features.vocabulary_counts,
            n_words=features.n_words,
            bucket_documents=tuple(int(v) for v in features.bucket_documents),
            bucket_pairs=_triangle(features.bucket_pairs),
        )

    @property
    def has_features(self) -> bool:
        """Whether descriptors and word buckets were profiled (profiles written before they
        existed have none)."""
        return bool(self.bucket_documents)

    @property
    def n(self) -> int:
        """All rows."""
        return self.count + self.n_missing

    @property
    def mean_length(self) -> float | None:
        """Mean length in characters of the present values."""
        return self.total_length / self.count if self.count else None

    @property
    def n_distinct(self) -> int:
        """HLL estimate of the distinct values (relative standard error about 1.6%; nearly
        exact for small counts)."""
        return round(float(self.sketch.get_estimate()))

    @property
    def pairs_matrix(self) -> NDArray[np.int64]:
        """:attr:`bucket_pairs` as the full symmetric ``N_BUCKETS x N_BUCKETS`` matrix."""
        return _square(self.bucket_pairs)

    def merge(self, other: TextColumnProfile) -> TextColumnProfile:
        """Summary of both batches (both must use the same vocabulary and bins)."""
        if not isinstance(other, TextColumnProfile):
            raise InputError(f"cannot merge a text column profile with {type(other).__name__}")
        return TextColumnProfile.merge_all([self, other])

    @classmethod
    def merge_all(cls, parts: list[TextColumnProfile]) -> TextColumnProfile:
        """Summary of all ``parts`` in one pass (as chaining :meth:`merge`)."""
        for other in parts:
            if not isinstance(other, TextColumnProfile):
                raise InputError(f"cannot merge a text column profile with {type(other).__name__}")
        first = parts[0]
        with_features = [p.has_features for p in parts]
        features = all(with_features)
        if features and any(p.vocabulary != first.vocabulary for p in parts):
            raise InputError(
                "the text profiles count different vocabularies (they were profiled against "
                "different references); profile every batch with the same reference= profile"
            )
        descriptors: dict[str, NumericColumnProfile] = {}
        if features:
            for name in DESCRIPTORS:
                descriptors[name] = NumericColumnProfile.merge_all(
                    [p.descriptors[name] for p in parts]
                )
        return TextColumnProfile(
            count=sum(p.count for p in parts),
            n_missing=sum(p.n_missing for p in parts),
            total_length=sum(p.total_length for p in parts),
            sketch=hll_merge_all([p.sketch for p in parts]),
            descriptors=descriptors,
            vocabulary=first.vocabulary if features else (),
            vocabulary_counts=tuple(
                int(v) for v in np.sum([p.vocabulary_counts for p in parts], axis=0)
            )
            if features and first.vocabulary
            else (),
            n_words=sum(p.n_words for p in parts) if features else 0,
            bucket_documents=tuple(
                int(v) for v in np.sum([p.bucket_documents for p in parts], axis=0)
            )
            if features
            else (),
            bucket_pairs=tuple(int(v) for v in np.sum([p.bucket_pairs for p in parts], axis=0))
            if features
            else (),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (the HLL sketch as base64)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "count": self.count,
            "n_missing": self.n_missing,
            "total_length": self.total_length,
            "hll": hll_to_bytes(self.sketch),
        }
        if self.has_features:
            out.update(
                descriptors={n: d.to_dict() for n, d in self.descriptors.items()},
                vocabulary=list(self.vocabulary),
                vocabulary_counts=list(self.vocabulary_counts),
                n_words=self.n_words,
                bucket_documents=list(self.bucket_documents),
                bucket_pairs=list(self.bucket_pairs),
            )
        if self.recount_held_out:
            out["recount_held_out"] = True
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextColumnProfile:
        """Rebuild from :meth:`to_dict` output (profiles written before text descriptors
        load without them)."""
        return cls(
            count=int(d["count"]),
            n_missing=int(d["n_missing"]),
            total_length=int(d["total_length"]),
            sketch=hll_from_bytes(d["hll"]),
            descriptors={
                str(n): NumericColumnProfile.from_dict(v)
                for n, v in d.get("descriptors", {}).items()
            },
            vocabulary=tuple(str(w) for w in d.get("vocabulary", ())),
            vocabulary_counts=tuple(int(v) for v in d.get("vocabulary_counts", ())),
            n_words=int(d.get("n_words", 0)),
            bucket_documents=tuple(int(v) for v in d.get("bucket_documents", ())),
            bucket_pairs=tuple(int(v) for v in d.get("bucket_pairs", ())),
            recount_held_out=bool(d.get("recount_held_out", False)),
        )
