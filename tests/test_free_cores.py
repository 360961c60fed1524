"""Thread counts follow the free cores, never the results (watchkeeper._extras.free_cores)."""

from __future__ import annotations

import os

import pytest

from watchkeeper import _extras as _cores


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]):
    """Set the affinity, the cgroup quota and the load average the module sees."""

    def set_(cores: int, load: float, quota: str = "max 100000") -> None:
        cpu_max = tmp_path / "cpu.max"
        cpu_max.write_text(quota + "\n")
        monkeypatch.setattr(_cores, "_CGROUP_CPU_MAX", cpu_max)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))

    return set_


@pytest.mark.parametrize(
    ("cores", "load", "expected"),
    [
        (2, 0.0, 2),  # idle: every core
        (2, 0.4, 2),
        (2, 1.0, 1),  # one CPU-bound neighbour: one thread
        (2, 9.0, 1),  # overloaded: still one
        (16, 0.0, 8),  # capped at the limit
        (16, 5.2, 8),
        (16, 10.0, 6),
    ],
)
def test_free_cores_are_the_usable_cores_minus_the_load(machine, cores, load, expected):
    machine(cores, load)
    assert _cores.free_cores() == expected


def test_a_cgroup_quota_caps_the_usable_cores(machine):
    machine(8, 0.0, quota="150000 100000")  # 1.5 CPUs in a container
    assert _cores.usable_cores() == 2
    machine(8, 0.0, quota="max 100000")
    assert _cores.usable_cores() == 8
    machine(8, 0.0, quota="garbage")
    assert _cores.usable_cores() == 8
