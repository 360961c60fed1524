"""Where a default validation gate spends its time: wall-clock and CPU seconds per stage.

Runs ``watchkeeper.lifecycle.validate`` with the default ``GateConfig`` on the bundled ACS
employment data (a sample of ``--rows`` rows, the 14 ACS features plus ``SEX`` and ``RAC1P``)
for a small scikit-learn classifier, and prints each stage's duration as it ends. CPU time
(``time.process_time``, every thread of the process) is what the gate's cost is made of; wall
time adds whatever the machine's other work takes from it.

    python benchmarks/gate.py --model hgb --rows 20000
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("hgb", "rf", "lr"), default="hgb")
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()

    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from watchkeeper.datasets import ACS_FEATURES, load_acs_employment
    from watchkeeper.lifecycle import validate

    models = {
        "hgb": HistGradientBoostingClassifier(random_state=0),
        "rf": RandomForestClassifier(n_estimators=100, random_state=0),
        "lr": LogisticRegression(max_iter=1000),
    }
    data = load_acs_employment().sample(args.rows, random_state=0)
    frame = data[[*ACS_FEATURES, "SEX", "RAC1P", "employed"]]
    marks: list[tuple[str, float, float]] = []

    def stage(name: str) -> None:
        marks.append((name, time.perf_counter(), time.process_time()))
        if len(marks) > 1:
            (prev, w0, c0), (_, w1, c1) = marks[-2], marks[-1]
            print(f"{prev:>22}: wall {w1 - w0:7.1f} s   cpu {c1 - c0:7.1f} s", flush=True)

    stage("prepare")
    report = validate(models[args.model], frame, target="employed", progress=stage)
    stage("end")
    wall, cpu = marks[-1][1] - marks[0][1], marks[-1][2] - marks[0][2]
    print(f"{'total':>22}: wall {wall:7.1f} s   cpu {cpu:7.1f} s")
    print(report.summary())


if __name__ == "__main__":
    main()
