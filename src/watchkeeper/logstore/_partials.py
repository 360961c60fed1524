"""Partial profiles built as records are logged, so that a monitor need not re-read them.

A :class:`PartialProfiler` receives the records of every committed write (the
:class:`~watchkeeper.logstore.GroupCommitWriter` calls :meth:`PartialProfiler.add` after each
commit), buffers their feature texts and, from its own thread, profiles them per
``(model, version, arm, hour)`` against the version's reference profile (its bins and
categories, with the monitor's row-sample size and seed), merges them into one running profile
per hour and persists those every ``flush_seconds`` and on :meth:`~PartialProfiler.close`.

Each process writes its own rows (``writer`` is unique per profiler): several gateway workers
never overwrite each other, and a monitor merges every writer's partials of a window. A
partial is a *claim* about ``n_rows`` logged rows: records logged but whose partial was lost
(a ``kill -9`` before a flush) leave the partials short of the log's count for that window, and
the monitor then reads the window's rows instead. Profiling never delays nor fails a commit:
its errors are counted (``errors_total``) and the records concerned are simply not covered.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper.exceptions import InputError

__all__ = ["PartialProfiler", "PartialRow", "reference_key"]

logger = logging.getLogger("watchkeeper.logstore")

#: The monitor's defaults (``MonitorConfig.window_sample`` and ``random_state``): partials
#: made with other values are not used by a monitor configured differently.
DEFAULT_SAMPLE_SIZE = 10_000
DEFAULT_RANDOM_STATE = 0


@dataclass(frozen=True, slots=True)
class PartialRow:
    """One stored partial profile: ``n_rows`` records of ``(model, version, arm)`` logged with
    ``bucket_start <= ts < bucket_end`` by ``writer`` (``part`` counts restarts of one hour),
    profiled on the columns ``columns`` against the reference whose :func:`reference_key` is
    ``reference``; ``profile`` is the profile's binary form (:meth:`Profile.to_bytes`)."""

    writer: str
    model: str
    version: int
    arm: str
    bucket_start: float
    bucket_end: float
    part: int
    n_rows: int
    reference: str
    columns: tuple[str, ...]
    profile: bytes
    updated: float
    #: the records' :class:`~watchkeeper.logstore.LogSummary` (binary form); ``None`` for
    #: partials written before summaries were kept (when read without their contents:
    #: ``1`` where there is one)
    summary: Any = None


def reference_key(profile: Any) -> str:
    """A short digest identifying a reference profile (what partials were binned on).

    Examples
    --------
    >>> import pandas as pd
    >>> from watchkeeper.data import Profile
    >>> p = Profile.from_data(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    >>> reference_key(p) == reference_key(Profile.from_dict(p.to_dict())), len(reference_key(p))
    (True, 16)
    """
    text = json.dumps(profile.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _forget(ref: weakref.ref[PartialProfiler]) -> None:
    profiler = ref()
    if profiler is not None:
        profiler._forget()


def _feature_names(reference: Any) -> list[str]:
    from watchkeeper.data import Role

    return [s.name for s in reference.schema if s.role in (Role.FEATURE, Role.SENSITIVE)]


@dataclass
class _Running:
    profile: Any
    columns: tuple[str, ...]
    part: int
    summary: Any  # LogSummary
    dirty: bool = True


class PartialProfiler:
    """Profiles logged records into per-hour partial profiles and stores them in ``sink``.

    Parameters
    ----------
    sink
        Where partials are stored: a sink with ``write_profile_partials`` (the SQLite log).
    reference
        ``reference(model, version)``: the version's reference profile, or ``None`` (its
        records are then not profiled; the monitor reads them).
    bucket_seconds
        Length of a partial's time bucket (UTC aligned); windows that are unions of buckets
        are covered (hours cover hourly, daily and weekly windows).
    sample_size, random_state
        Row sample of each partial: use the monitor's ``window_sample`` and
        ``random_state`` (a monitor configured otherwise ignores these partials).
    flush_seconds
        Longest time between a commit and the persistence of its partial.
    max_buffered
        Records buffered before the profiler thread is woken early (the memory bound).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, pandas as pd
    >>> from watchkeeper.data import Profile
    >>> from watchkeeper.logstore import GroupCommitWriter, PredictionRecord, SQLiteLogSink
    >>> rng = np.random.default_rng(0)
    >>> ref = Profile.from_data(pd.DataFrame({"x": rng.normal(size=500)}))
    >>> tmp = tempfile.TemporaryDirectory()
    >>> sink = SQLiteLogSink(os.path.join(tmp.name, "log.db"))
    >>> profiler = PartialProfiler(sink, lambda model, version: ref)
    >>> with GroupCommitWriter(sink, on_commit=profiler.add) as writer:
    ...     futures = [writer.submit([PredictionRecord(f"r{i}", 1.7e9 + i, "m", 1, "champion",
    ...                                                {"x": float(i)}, 0)]) for i in range(50)]
    ...     _ = [f.result() for f in futures]
    >>> profiler.close()
    >>> [(p.n_rows, p.columns) for p in sink.profile_partials("m", start=0, end=2e9)]
    [(50, ('x',))]
    >>> sink.close(); tmp.cleanup()
    """

    def __init__(
        self,
        sink: Any,
        reference: Callable[[str, int], Any],
        *,
        bucket_seconds: float = 3600.0,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        random_state: int = DEFAULT_RANDOM_STATE,
        flush_seconds: float = 30.0,
        max_buffered: int = 20_000,
    ) -> None:
        if not (isinstance(bucket_seconds, int | float) and bucket_seconds > 0):
            raise InputError(f"bucket_seconds must be a positive number, got {bucket_seconds!r}")
        if not (isinstance(flush_seconds, int | float) and flush_seconds > 0):
            raise InputError(f"flush_seconds must be a positive number, got {flush_seconds!r}")
        if getattr(sink, "write_profile_partials", None) is None:
            raise InputError(
                f"{type(sink).__name__} cannot store partial profiles; use the SQLite log"
            )
        self.sink = sink
        self._reference_of = reference
        self.bucket_seconds = float(bucket_seconds)
        self.sample_size = int(sample_size)
        self.random_state = int(random_state)
        self.flush_seconds = float(flush_seconds)
        self.max_buffered = int(max_buffered)
        self.writer_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._flush_lock = threading.Lock()  # one flush at a time
        self._buffer: dict[tuple[str, int, str, float], list[tuple[str, Any]]] = {}
        self._buffered = 0
        self._running: dict[tuple[str, int, str, float], _Running] = {}
        self._parts: dict[tuple[str, int, str, float], int] = {}
        self._references: dict[tuple[str, int], tuple[Any, str] | None] = {}
        # each version's prediction baseline (profile, task, classes, key) and when it was
        # last looked up in the log
        self._baselines: dict[tuple[str, int], tuple[tuple[Any, str, Any, str] | None, float]] = {}
        self._closed = False
        self._latest = -math.inf  # the latest record time seen (event time)
        #: Records profiled and persisted; records left unprofiled (no reference, an error).
        self.profiled_total = 0
        self.skipped_total = 0
        self.errors_total = 0
        self._thread = threading.Thread(
            target=self._run, name="watchkeeper-log-profiler", daemon=True
        )
        self._thread.start()
        # a profiler never closed (an app never shut down) lets go of its sketches at exit
        atexit.register(_forget, weakref.ref(self))

    # -- the commit path -----------------------------------------------------------------

    def add(self, records: Sequence[Any], features: Sequence[str] | None = None) -> None:
        """Buffer committed ``records`` (their feature texts ``features``, as encoded for the
        log; taken from ``records.encoded`` when not given). Cheap: no profiling here."""
        if features is None:
            features = [texts[0] for texts in records.encoded]  # type: ignore[attr-defined]
        size = self.bucket_seconds
        with self._lock:
            if self._closed:
                return
            for record, text in zip(records, features, strict=True):
                self._latest = max(self._latest, float(record.ts))
                start = math.floor(float(record.ts) / size) * size
                key = (record.model, int(record.version), record.arm, start)
                self._buffer.setdefault(key, []).append((text, record))
            self._buffered += len(records)
            if self._buffered >= self.max_buffered:
                self._wake.notify()

    # -- the profiler thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._closed and self._buffered < self.max_buffered:
                    self._wake.wait(self.flush_seconds)
                closed = self._closed
            try:
                self.flush()
            except Exception as exc:  # never stop profiling on one failure
                self.errors_total += 1
                logger.warning("partial profiles not stored: %s: %s", type(exc).__name__, exc)
            if closed:
                return

    def _reference(self, model: str, version: int) -> tuple[Any, str] | None:
        key = (model, version)
        if key not in self._references:
            try:
                ref = self._reference_of(model, version)
            except Exception as exc:
                logger.warning("no reference profile for %s v%s: %s", model, version, exc)
                ref = None
            self._references[key] = None if ref is None else (ref, reference_key(ref))
        return self._references[key]

    def _profile(self, reference: Any, texts: list[str]) -> tuple[Any, tuple[str, ...]] | None:
        from watchkeeper.logstore._arrow import window_table

        # decoded exactly as a window read decodes them, so that the types are the same
        rows = [("", 0.0, 0, "", 0, "ok", None, 0.0, None, None, t, None, None, None)
                for t in texts]  # fmt: skip
        table = window_table(rows)
        names = [n for n in _feature_names(reference) if n in table.column_names]
        if not names:
            return None
        return self._against(reference, table, names), tuple(names)

    def _against(self, reference: Any, table: Any, names: list[str]) -> Any:
        """The profile of ``table``'s columns ``names`` on ``reference``'s bins, with the
        monitor's row sample."""
        from watchkeeper.data import Profile

        return Profile.from_data(
            table.select(names),
            reference.schema.select(names),
            reference=reference,
            sample_size=self.sample_size,
            random_state=self.random_state,
            n_jobs=1,
        )

    def _baseline(self, model: str, version: int) -> tuple[Any, str, Any, str] | None:
        """The version's prediction baseline stored in the log (``None`` until a monitor
        has stored one, or when it cannot be read). Looked up again at most once per
        ``flush_seconds``, so that a baseline the monitor replaces is followed."""
        key = (model, version)
        found: tuple[Any, str, Any, str] | None
        found, checked = self._baselines.get(key, (None, -math.inf))
        if time.monotonic() - checked < self.flush_seconds:
            return found
        lookup = getattr(self.sink, "prediction_baseline", None)
        if lookup is None:
            return None
        try:
            stored = lookup(model, version)
            if stored is None:
                found = None
            elif found is None or found[3] != stored.key:
                from watchkeeper.data import Profile

                profile = Profile.from_bytes(stored.profile)
                found = (profile, stored.task, stored.classes, stored.key)
        except Exception as exc:
            logger.warning("prediction baseline of %s v%s not read: %s", model, version, exc)
            found = None
        self._baselines[key] = (found, time.monotonic())
        return found

    def _summary(self, model: str, version: int, records: list[Any]) -> Any:
        """The records' :class:`LogSummary` (their predictions profiled on the version's
        prediction baseline when there is one)."""
        from watchkeeper.logstore._summary import LogSummary, prediction_columns

        latency = [float(r.latency_ms) for r in records]
        status = [r.status for r in records]
        ts = [float(r.ts) for r in records]
        baseline = self._baseline(model, version)
        if baseline is None:
            return LogSummary.of(latency, status, ts)
        reference, task, classes, key = baseline
        table = prediction_columns(
            [r.prediction for r in records], [r.scores for r in records], task, classes
        )
        present = [n for n in table.column_names if n in reference.schema]
        predictions = self._against(reference, table, present)
        return LogSummary.of(latency, status, ts, predictions, key)

    def flush(self) -> None:
        """Profile what is buffered and store every changed partial (also called by the
        profiler thread every ``flush_seconds``)."""
        with self._flush_lock:
            with self._lock:
                buffer, self._buffer, self._buffered = self._buffer, {}, 0
            for key, items in buffer.items():
                model, version, _arm, _start = key
                ref = self._reference(model, version)
                if ref is None:
                    self.skipped_total += len(items)
                    continue
                try:
                    made = self._profile(ref[0], [text for text, _ in items])
                    summary = None
                    if made is not None:
                        summary = self._summary(model, version, [r for _, r in items])
                except Exception as exc:
                    self.errors_total += 1
                    self.skipped_total += len(items)
                    logger.warning("records of %s v%s not profiled: %s", model, version, exc)
                    continue
                if made is None:
                    self.skipped_total += len(items)
                    continue
                profile, columns = made
                self.profiled_total += len(items)
                running = self._running.get(key)
                if running is not None and running.columns == columns:
                    try:
                        merged = running.profile.merge(profile)
                    except InputError:
                        pass
                    else:
                        running.profile = merged
                        running.summary = running.summary.merge(summary)
                        running.dirty = True
                        continue
                # a new hour, or records whose columns differ: a new part of the hour
                part = self._parts.get(key, -1) + 1
                self._parts[key] = part
                if running is not None and running.dirty:
                    self._store([(key, running)])
                self._running[key] = _Running(profile, columns, part, summary)
            self._store([(k, r) for k, r in self._running.items() if r.dirty])
            self._evict()

    def _store(self, items: list[tuple[tuple[str, int, str, float], _Running]]) -> None:
        if not items:
            return
        now = time.time()
        rows = []
        for (model, version, arm, start), running in items:
            ref = self._reference(model, version)
            assert ref is not None
            rows.append(
                PartialRow(
                    self.writer_id, model, version, arm, start, start + self.bucket_seconds,
                    running.part, running.profile.n_rows, ref[1], running.columns,
                    running.profile.to_bytes(), now, running.summary.to_bytes(),
                )
            )  # fmt: skip
        self.sink.write_profile_partials(rows)
        for _key, running in items:
            running.dirty = False

    def _evict(self) -> None:
        """Forget stored hours that ended more than two flush intervals before the latest
        record seen (event time, so that replayed traffic is profiled like live traffic; a
        late record of a forgotten hour starts a new part of it)."""
        horizon = self._latest - 2 * self.flush_seconds - self.bucket_seconds
        for key in [k for k, r in self._running.items() if not r.dirty and k[3] < horizon]:
            del self._running[key]

    def _forget(self) -> None:
        self._running.clear()
        self._references.clear()
        self._baselines.clear()

    def close(self, timeout: float | None = 30.0) -> None:
        """Profile and store what is buffered, then stop the thread (idempotent)."""
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._forget()  # stored: nothing left to keep (and no sketch outlives it)

    def stats(self) -> dict[str, Any]:
        """Counters: buffered, skipped and failed records."""
        return {
            "profile_buffered": self._buffered,
            "profile_skipped_total": self.skipped_total,
            "profile_errors_total": self.errors_total,
        }
