"""The loop's sequential decisions, simulated: error rates and how long verdicts take.

Run from the repository root with the project's interpreter::

    .venv/bin/python benchmarks/loop_simulations.py --rollouts 400   # as in docs/loop.md (writes it)
    .venv/bin/python benchmarks/loop_simulations.py --quick          # 200 rollouts, prints only

The canary cases hold rollouts x 40,000 numbers per array: 400 rollouts need about 2 GB.

Every rollout looks at its confidence sequence after every label (see
``watchkeeper.loop.simulate_rollouts``); the table is rewritten between the
``loop-simulations`` markers of ``docs/loop.md``. Seeded: the same numbers on every machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from watchkeeper.loop import simulate_rollouts

DOC = Path(__file__).resolve().parents[1] / "docs" / "loop.md"
START, END = "<!-- loop-simulations:start -->", "<!-- loop-simulations:end -->"

CASES = [
    ("A/A, shadow", {"mode": "shadow", "effect": 0.0, "requests": 10_000, "peeked": True}),
    ("A/A, canary 5 → 25 → 50 %", {"mode": "canary", "effect": 0.0, "requests": 20_000}),
    ("A/A, canary, labels 1,500 requests late", {"mode": "canary", "effect": 0.0,
                                                      "requests": 20_000, "label_delay": 1500}),
    ("worse by 0.1 sd, shadow", {"mode": "shadow", "effect": -0.1, "requests": 20_000}),
    ("worse by 0.1 sd, canary", {"mode": "canary", "effect": -0.1, "requests": 40_000}),
    ("worse by 0.1 sd, canary, labels 1,500 late", {"mode": "canary", "effect": -0.1,
                                                         "requests": 40_000, "label_delay": 1500}),
    ("better by 0.1 sd, shadow", {"mode": "shadow", "effect": 0.1, "requests": 20_000}),
    ("better by 0.1 sd, canary", {"mode": "canary", "effect": 0.1, "requests": 40_000}),
]  # fmt: skip


def _f(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:.1%}" if pct else f"{v:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 rollouts, print only")
    parser.add_argument("--rollouts", type=int, default=None)
    args = parser.parse_args(argv)
    rollouts = args.rollouts or (200 if args.quick else 400)
    rows = [
        "| case | rollouts | better | worse | no verdict | t-test peeked at every label: "
        "better | labels to verdict (median / p95) | fixed-horizon labels, 90 % power | "
        "challenger requests before verdict (median / p95) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, (name, kwargs) in enumerate(CASES):
        s = simulate_rollouts(rollouts=rollouts, seed=100 + i, **kwargs)  # type: ignore[arg-type]
        rows.append(
            f"| {name} | {s.rollouts:,} | {_f(s.better, True)} | {_f(s.worse, True)} | "
            f"{_f(s.no_verdict, True)} | {_f(s.peeked_better, True)} | "
            f"{_f(s.median_labels)} / {_f(s.p95_labels)} | {_f(s.fixed_horizon_labels)} | "
            f"{_f(s.median_requests)} / {_f(s.p95_requests)} |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    if args.quick:
        return 0
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"markers {START} / {END} not found in {DOC}", file=sys.stderr)
        return 2
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{table}\n{END}{tail}", encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
