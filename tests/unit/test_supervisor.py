"""The restart decisions of app/supervisor.py, driven by simulated time."""

from __future__ import annotations

import signal

import pytest

from app.supervisor import Backoff, Restart, Supervisor, exit_fields

BACKOFF = Backoff()


def crash_loop(supervisor: Supervisor, name: str, count: int, up_for: float = 0.1) -> list[float]:
    """Crash ``name`` ``count`` times, each ``up_for`` seconds after its restart; the waits."""
    now, delays = 0.0, []
    supervisor.started(name, now)
    for _ in range(count):
        now += up_for
        restart = supervisor.crashed(name, now)
        delays.append(restart.delay)
        now = restart.at
        assert supervisor.due(now) == [name]
        supervisor.started(name, now)
    return delays


def test_the_defaults_are_half_a_second_doubling_to_thirty() -> None:
    assert (BACKOFF.first, BACKOFF.longest) == (0.5, 30.0)


def test_the_wait_doubles_per_crash_in_a_row_up_to_the_longest() -> None:
    delays = crash_loop(Supervisor(["catalog"]), "catalog", 9)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_service_that_stayed_up_starts_the_count_again() -> None:
    supervisor = Supervisor(["catalog"])
    crash_loop(supervisor, "catalog", 5)  # now waiting 8 s, and up again
    later = 1000.0
    supervisor.started("catalog", later)
    assert supervisor.crashed("catalog", later + BACKOFF.stable_after).delay == BACKOFF.first


def test_a_crash_before_the_stable_time_keeps_counting() -> None:
    supervisor = Supervisor(["catalog"])
    delays = crash_loop(supervisor, "catalog", 3, up_for=BACKOFF.stable_after - 1)
    assert delays == [0.5, 1.0, 2.0]


def test_a_restart_is_due_at_its_time_and_named_once() -> None:
    supervisor = Supervisor(["redis", "catalog"])
    supervisor.started("catalog", 0.0)
    restart = supervisor.crashed("catalog", 10.0)
    assert restart == Restart("catalog", at=10.5, delay=0.5, crashes=1)
    assert supervisor.due(10.4) == []
    assert supervisor.due(10.5) == ["catalog"]
    assert supervisor.due(11.0) == []


def test_several_due_restarts_come_soonest_first() -> None:
    supervisor = Supervisor(["redis", "catalog", "frontend"])
    for name in ("redis", "catalog", "frontend"):
        supervisor.started(name, 0.0)
    supervisor.crashed("frontend", 1.0)
    supervisor.crashed("redis", 1.2)
    assert supervisor.due(5.0) == ["frontend", "redis"]


def test_a_failed_restart_counts_as_a_crash() -> None:
    supervisor = Supervisor(["replica-1"])
    supervisor.started("replica-1", 0.0)
    first = supervisor.crashed("replica-1", 100.0)
    assert supervisor.due(first.at) == ["replica-1"]
    # The restart never became healthy: no `started` in between.
    assert supervisor.crashed("replica-1", first.at + 30.0).delay == 1.0


def test_each_service_has_its_own_count() -> None:
    supervisor = Supervisor(["catalog", "frontend"])
    crash_loop(supervisor, "catalog", 4)
    supervisor.started("frontend", 0.0)
    assert supervisor.crashed("frontend", 1.0).delay == BACKOFF.first


def test_a_service_crashing_for_ever_waits_the_longest() -> None:
    supervisor = Supervisor(["catalog"])
    supervisor.started("catalog", 0.0)
    for _ in range(5000):
        restart = supervisor.crashed("catalog", 1.0)
    assert (restart.crashes, restart.delay) == (5000, BACKOFF.longest)


def test_another_backoff() -> None:
    backoff = Backoff(first=0.1, longest=0.35, stable_after=5.0)
    delays = crash_loop(Supervisor(["catalog"], backoff), "catalog", 4)
    assert delays == pytest.approx([0.1, 0.2, 0.35, 0.35])


def test_unknown_services_are_refused() -> None:
    with pytest.raises(KeyError):
        Supervisor(["catalog"]).crashed("catalgo", 0.0)


@pytest.mark.parametrize(
    ("returncode", "fields"),
    [
        (-signal.SIGKILL, {"signal": "SIGKILL"}),
        (-signal.SIGSEGV, {"signal": "SIGSEGV"}),
        (0, {"exit_code": 0}),
        (3, {"exit_code": 3}),
    ],
)
def test_exit_fields(returncode: int, fields: dict) -> None:
    assert exit_fields(returncode) == fields
