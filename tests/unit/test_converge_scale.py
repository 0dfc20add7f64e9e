"""The converge scale benchmark's projection: nightly wall time from one controller and AWX/AAP execution nodes."""

from __future__ import annotations

import pytest

from benchmarks.converge_scale import changed_tasks, project


def test_one_node_when_the_night_fits_one_controller() -> None:
    # 1.5 s re-converge + 0.5 s audit = 2.0 s per host; 2,000 hosts on 2 cores: 1,500 + 500 = 2,000 s.
    projection = project(2000, 1.5, 0.5, 2)
    assert projection.converge_seconds == pytest.approx(1500.0)
    assert projection.audit_seconds == pytest.approx(500.0)
    assert projection.total_seconds == pytest.approx(2000.0)
    assert projection.nodes == 1


def test_several_nodes_when_the_night_does_not() -> None:
    # 12 s + 3 s per host, 2,000 hosts, 2 cores: 15,000 s = 4.17 windows of an hour, so 5 nodes.
    projection = project(2000, 12.0, 3.0, 2)
    assert projection.total_seconds == pytest.approx(15000.0)
    assert projection.nodes == 5


def test_more_cores_mean_fewer_nodes() -> None:
    assert project(500, 12.0, 3.0, 2).nodes == 2  # 3,750 s
    assert project(500, 12.0, 3.0, 4).nodes == 1  # 1,875 s


def test_exactly_one_window_is_one_node() -> None:
    assert project(3600, 1.0, 1.0, 2).nodes == 1
    assert project(3601, 1.0, 1.0, 2).nodes == 2


@pytest.mark.parametrize(
    ("hosts", "converge", "audit", "cores", "window"),
    [
        (0, 1.0, 1.0, 2, 3600.0),
        (-5, 1.0, 1.0, 2, 3600.0),
        (10, 0.0, 1.0, 2, 3600.0),
        (10, 1.0, -0.1, 2, 3600.0),
        (10, 1.0, 1.0, 0, 3600.0),
        (10, 1.0, 1.0, 2, 0.0),
    ],
)
def test_refuses_non_positive_input(hosts: int, converge: float, audit: float, cores: int, window: float) -> None:
    with pytest.raises(ValueError):
        project(hosts, converge, audit, cores, window)


def test_changed_tasks_sums_the_recap() -> None:
    recap = (
        "PLAY RECAP *********\n"
        "scale-001 : ok=120 changed=0 unreachable=0 failed=0 skipped=40 rescued=0 ignored=0\n"
        "scale-002 : ok=120 changed=3 unreachable=0 failed=0 skipped=40 rescued=0 ignored=0\n"
    )
    assert changed_tasks(recap) == 3
    assert changed_tasks("no recap") == 0
