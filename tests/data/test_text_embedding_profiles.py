"""Profiles of text and embedding columns (data/_text_profile.py, data/_embedding_profile.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from watchkeeper.data import (
    ColumnKind,
    EmbeddingColumnProfile,
    Profile,
    Role,
    Schema,
    TextColumnProfile,
)
from watchkeeper.data._text_profile import N_BUCKETS, word_buckets
from watchkeeper.exceptions import InputError

WORDS = np.array([f"w{i}" for i in range(500)])


def _docs(rng: np.random.Generator, n: int) -> list[str]:
    p = 1 / np.arange(1, 501)
    p /= p.sum()
    return [" ".join(rng.choice(WORDS, size=rng.integers(2, 20), p=p)) for _ in range(n)]


def _frame(seed: int, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"t": _docs(rng, n), "e": list(rng.normal(size=(n, 12)))})


def test_equal_length_numeric_lists_are_embeddings_and_ragged_ones_are_not() -> None:
    table = pa.table(
        {
            "fixed": pa.array([[1.0, 2.0], [3.0, 4.0]], type=pa.list_(pa.float64(), 2)),
            "lists": pa.array([[1, 2, 3], [4, 5, 6]]),
            "ragged": pa.array([[1.0], [2.0, 3.0]]),
            "words": pa.array([["a"], ["b"]]),
        }
    )
    s = Schema.infer(table)
    assert s["fixed"].kind is ColumnKind.EMBEDDING
    assert s["lists"].kind is ColumnKind.EMBEDDING
    assert (s["ragged"].kind, s["ragged"].role) == (ColumnKind.TEXT, Role.IGNORED)
    assert "different lengths" in s["ragged"].note
    assert s["words"].role is Role.IGNORED
    frame = pd.DataFrame({"e": [np.zeros(3), np.ones(3)]})
    assert Schema.infer(frame)["e"].kind is ColumnKind.EMBEDDING


def test_polars_array_column_is_an_embedding() -> None:
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"e": [[1.0, 2.0], [3.0, 4.0]]}, schema={"e": pl.Array(pl.Float64, 2)})
    assert Schema.infer(frame)["e"].kind is ColumnKind.EMBEDDING


def test_text_descriptors_match_a_direct_count() -> None:
    col = TextColumnProfile.from_strings(pa.chunked_array([["Hi there, you!", "42", "", None]]))
    d = col.descriptors
    assert (col.count, col.n_missing, col.n_words) == (3, 1, 4)
    assert d["length"].mean == pytest.approx((14 + 2 + 0) / 3)
    assert d["words"].mean == pytest.approx((3 + 1 + 0) / 3)
    # letters: 10 of 14 characters; "42" has none; "" has no characters (missing).
    assert d["non_letter_share"].mean == pytest.approx((4 / 14 + 1.0) / 2)
    assert d["non_letter_share"].n_missing == 1
    assert (
        sum(col.bucket_documents)
        == len({("a", b) for b in word_buckets(["hi", "there", "you"])}) + 1
    )


def test_current_oov_share_counts_words_outside_the_reference_vocabulary() -> None:
    ref = TextColumnProfile.from_strings(pa.chunked_array([["a b c"] * 200]))
    assert set(ref.vocabulary) == {"a", "b", "c"}
    cur = TextColumnProfile.from_strings(pa.chunked_array([["a zz", "yy xx"]]), reference=ref)
    assert cur.vocabulary == ref.vocabulary
    assert cur.descriptors["oov_share"].mean == pytest.approx((0.5 + 1.0) / 2)
    assert cur.vocabulary_counts[ref.vocabulary.index("a")] == 1


def test_word_buckets_are_the_same_in_another_process() -> None:
    words = ["drift", "watch", "keeper", "ünïcode"]
    here = word_buckets(words).tolist()
    code = (
        "from watchkeeper.data._text_profile import word_buckets;"
        f"print(word_buckets({words!r}).tolist())"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(out.stdout) == here
    assert all(0 <= b < N_BUCKETS for b in here)


def test_window_profiles_merge_to_the_whole() -> None:
    ref = Profile.from_data(_frame(0))
    cur = _frame(1, 500)
    whole = Profile.from_data(cur, reference=ref)
    parts = [Profile.from_data(cur[i : i + 100], reference=ref) for i in range(0, 500, 100)]
    merged = Profile.merge_all(parts)
    chained = parts[0]
    for p in parts[1:]:
        chained = chained.merge(p)
    for m in (merged, chained):
        t, w = m.text("t"), whole.text("t")
        assert (t.count, t.n_words, t.vocabulary_counts) == (
            w.count,
            w.n_words,
            w.vocabulary_counts,
        )
        assert t.bucket_documents == w.bucket_documents
        assert t.bucket_pairs == w.bucket_pairs
        for name in w.descriptors:
            assert t.descriptors[name].bin_counts == w.descriptors[name].bin_counts
        assert m.embedding("e") == whole.embedding("e")


def test_profiles_against_other_references_refuse_to_merge() -> None:
    a, b = Profile.from_data(_frame(0)), Profile.from_data(_frame(1))
    with pytest.raises(InputError, match=r"vocabular|projection|bins"):
        a.merge(b)
    with pytest.raises(InputError, match="different projections"):
        a.embedding("e").merge(b.embedding("e"))


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_saved_profiles_keep_text_and_embedding_state(tmp_path: object, fmt: str) -> None:
    from pathlib import Path

    ref = Profile.from_data(_frame(0))
    path = ref.save(Path(str(tmp_path)) / f"ref.{'wkp' if fmt == 'binary' else 'json'}")
    back = Profile.load(path)
    assert back.text("t") == ref.text("t")
    assert back.embedding("e") == ref.embedding("e")
    assert back.sample is not None
    assert "e" not in back.sample.column_names


def test_a_text_profile_written_before_descriptors_still_loads() -> None:
    ref = Profile.from_data(_frame(0)[["t"]])
    payload = ref.to_dict()
    old = payload["columns"]["t"]
    payload["columns"]["t"] = {
        k: old[k] for k in ("kind", "count", "n_missing", "total_length", "hll")
    }
    back = Profile.from_dict(payload)
    assert not back.text("t").has_features
    assert back.text("t").count == 600
    # A current profile against such a reference profiles counts only.
    cur = Profile.from_data(_frame(1)[["t"]], reference=back)
    assert not cur.text("t").has_features


def test_embedding_projection_is_fitted_off_the_stored_sample() -> None:
    col = EmbeddingColumnProfile.from_column(pa.chunked_array([list(np.eye(12).repeat(50, 0))]))
    assert col.count == 600
    assert col.sample.shape == (300, col.n_components + 1)
    x = np.random.default_rng(0).normal(size=(5, 12))
    expected_scores = (x - col.mean) @ col.components.T
    assert np.allclose(col.project(x)[:, :-1], expected_scores)
    resid = (x - col.mean) - expected_scores @ col.components
    assert np.allclose(col.project(x)[:, -1], np.linalg.norm(resid, axis=1))


def test_embedding_bad_vectors_are_type_errors() -> None:
    ref = EmbeddingColumnProfile.from_column(
        pa.chunked_array([[[1.0, 2.0], [2.0, 1.0], [0.0, 3.0]]])
    )
    cur = EmbeddingColumnProfile.from_column(
        pa.chunked_array([[[1.0, 2.0], [1.0], [float("nan"), 1.0], None]]), reference=ref
    )
    assert (cur.count, cur.n_type_errors, cur.n_missing) == (1, 2, 1)
    schema = Schema.infer(pa.table({"e": [[1.0, 2.0]]}))
    bad = pa.table({"e": pa.array([[1.0, 2.0], [1.0]])})
    mismatches = schema.validate(bad).type_mismatches
    assert [(m.column, m.n_bad) for m in mismatches] == [("e", 1)]


def test_batches_without_reference_give_the_profile_of_all_rows() -> None:
    # While the first pass's sample holds every row, the vocabulary, the descriptor bins and
    # the projection are those of Profile.from_data on all rows.
    df = _frame(0)
    schema = Schema.infer(df)
    whole = Profile.from_data(df)
    streamed = Profile.from_batches([df[:250], df[250:]], schema)
    t, w = streamed.text("t"), whole.text("t")
    assert (t.vocabulary, t.vocabulary_counts, t.bucket_pairs) == (
        w.vocabulary,
        w.vocabulary_counts,
        w.bucket_pairs,
    )
    for name in w.descriptors:
        assert t.descriptors[name].bin_counts == w.descriptors[name].bin_counts
    assert streamed.embedding("e") == whole.embedding("e")
    assert streamed.sample is not None
    assert whole.sample is not None
    assert streamed.sample.equals(whole.sample)
    only_vectors = Profile.from_batches([df[:250][["e"]], df[250:][["e"]]], schema.select(["e"]))
    assert only_vectors.embedding("e") == Profile.from_data(df[["e"]]).embedding("e")
    assert only_vectors.sample is None


def test_bucket_pairs_do_not_depend_on_the_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    import watchkeeper.data._text_profile as text_profile

    strings = pa.chunked_array([_docs(np.random.default_rng(3), 300)])
    whole = text_profile.text_features(strings, None)
    monkeypatch.setattr(text_profile, "_BLOCK", 7)
    blocked = text_profile.text_features(strings, None)
    assert np.array_equal(whole.bucket_pairs, blocked.bucket_pairs)
    # The diagonal is the documents containing each bucket, counted directly here.
    tokens = [set(d.split()) for d in strings.to_pylist()]
    direct = np.zeros(N_BUCKETS, dtype=np.int64)
    for doc in tokens:
        for b in set(word_buckets(sorted(doc)).tolist()):
            direct[b] += 1
    assert np.array_equal(whole.bucket_documents, direct)


def test_rebasing_says_embeddings_must_be_profiled_again() -> None:
    ref = Profile.from_data(_frame(0))
    with pytest.raises(InputError, match="profile the data again with reference="):
        Profile.from_data(_frame(1, 100)).rebased(ref)
    text_only = Profile.from_data(_frame(1, 100)[["t"]]).rebased(
        Profile.from_data(_frame(0)[["t"]])
    )
    assert text_only.text("t").count == 100


def test_first_pass_pilots_with_vectors_travel_as_json() -> None:
    # The Spark engine ships pilots from workers as JSON; the priorities are recomputed.
    from watchkeeper.data.streaming import Pilot

    df = _frame(2, 300)
    schema = Schema.infer(df)
    pilot = Pilot.from_table(pa.Table.from_pandas(df), schema, sample_size=100, random_state=0)
    back = Pilot.from_dict(json.loads(json.dumps(pilot.to_dict())))
    assert back.sample is not None
    assert pilot.sample is not None
    assert back.sample.equals(pilot.sample)
    assert np.array_equal(back.priorities, pilot.priorities)
    assert "e" in back.sample.column_names
