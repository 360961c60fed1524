"""Thread pools are sized from the cores this process may use (watchkeeper._extras)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from watchkeeper import _extras


@pytest.mark.parametrize(
    ("affinity", "quota", "expected"),
    [
        (8, "max 100000", 8),  # no quota: the affinity
        (8, "150000 100000", 2),  # 1.5 CPUs in a container: two threads
        (8, "50000 100000", 1),  # half a CPU: one
        (2, "400000 100000", 2),  # a quota above the affinity: the affinity
        (8, "garbage", 8),  # unreadable: ignored
    ],
)
def test_a_cgroup_quota_caps_the_affinity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, affinity: int, quota: str, expected: int
) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(quota + "\n")
    monkeypatch.setattr(_extras, "_CGROUP_CPU_MAX", cpu_max)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)))
    assert _extras.usable_cores() == expected


def test_without_a_cgroup_file_the_affinity_counts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_extras, "_CGROUP_CPU_MAX", tmp_path / "missing")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5})
    assert _extras.usable_cores() == 3
