"""Child process of the kill -9 test: logs records and prints each id once it is committed.

Usage: python _durability_child.py DB_PATH_OR_URL {full,normal} N_THREADS

DB_PATH_OR_URL is anything :func:`watchkeeper.logstore.open_sink` opens (a SQLite file, a
postgresql:// URL).

Every thread submits records through one GroupCommitWriter, waits for its future and only
then prints the id, exactly as a gateway sends a response only after the log commit. Every
fifth record is submitted twice (a retry), which must not duplicate it. Runs until killed.
"""

from __future__ import annotations

import sys
import threading
import time


def main(path: str, synchronous: str, n_threads: int) -> None:
    from watchkeeper.logstore import GroupCommitWriter, PredictionRecord, open_sink

    sink = open_sink(path, synchronous=synchronous)  # type: ignore[arg-type]
    writer = GroupCommitWriter(sink, max_pending=200, max_batch=50, max_delay_ms=1.0)
    out = threading.Lock()
    tag = f"{synchronous}-{time.monotonic_ns()}"

    def produce(t: int) -> None:
        i = 0
        while True:
            record = PredictionRecord(
                f"{tag}-{t}-{i}", time.time(), "durable", 1, "champion",
                {"thread": t, "i": i, "x": i * 0.5}, i % 2, latency_ms=0.1,
            )  # fmt: skip
            writer.submit([record]).result()
            if i % 5 == 0:
                writer.submit([record]).result()
            with out:
                sys.stdout.write(record.id + "\n")
                sys.stdout.flush()
            i += 1

    threads = [threading.Thread(target=produce, args=(t,), daemon=True) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
