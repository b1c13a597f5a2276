"""Restarting the store's crashed services, as pure logic: exits and times in, decisions out.

``toystore up`` (``app/up.py``) runs the processes: it tells the ``Supervisor`` when a service
started and when one exited that nobody stopped, sleeps until the next restart is due and
starts what ``due`` names. Nothing here starts a process, sleeps or reads a clock: time comes
in as ``now`` (seconds on a monotonic clock), so ``tests/unit/test_supervisor.py`` drives it
through any schedule of crashes instantly.

A service that keeps crashing is restarted ever more slowly: the wait doubles from
``Backoff.first`` after each crash in a row, up to ``Backoff.longest``. A service that stayed
up for ``Backoff.stable_after`` seconds before it crashed starts the count again, so one crash
a day is always restarted after the first, short wait.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import dataclass

# 2**64 * first is far beyond any longest wait; the cap keeps the arithmetic in floats.
_MAX_DOUBLINGS = 64


@dataclass(frozen=True)
class Backoff:
    first: float = 0.5  # seconds before the restart after a first crash
    longest: float = 30.0  # the wait doubles per crash in a row up to this
    stable_after: float = 60.0  # up this long before a crash: the count starts again

    def delay(self, crashes: int) -> float:
        """The wait before restarting a service that crashed ``crashes`` times in a row."""
        return min(self.longest, self.first * 2 ** min(crashes - 1, _MAX_DOUBLINGS))


@dataclass(frozen=True)
class Restart:
    """Start ``service`` again at ``at``, ``delay`` seconds after its ``crashes``-th crash in a
    row."""

    service: str
    at: float
    delay: float
    crashes: int


class Supervisor:
    """When to restart each of a set of services, from when they started and exited."""

    def __init__(self, services: Iterable[str], backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self._services = frozenset(services)
        self._up_since: dict[str, float] = {}  # running services: when they started
        self._crashes = dict.fromkeys(self._services, 0)  # in a row, per service
        self._pending: dict[str, Restart] = {}  # crashed services waiting for their restart

    def _known(self, service: str) -> None:
        if service not in self._services:
            raise KeyError(f"unknown service {service!r}")

    def started(self, service: str, now: float) -> None:
        """``service`` is running (and healthy) since ``now``."""
        self._known(service)
        self._pending.pop(service, None)
        self._up_since[service] = now

    def crashed(self, service: str, now: float) -> Restart:
        """``service`` exited at ``now`` without being asked to, or a restart of it failed:
        when to start it again."""
        self._known(service)
        up_since = self._up_since.pop(service, None)
        stable = up_since is not None and now - up_since >= self.backoff.stable_after
        crashes = 1 if stable else self._crashes[service] + 1
        self._crashes[service] = crashes
        delay = self.backoff.delay(crashes)
        restart = Restart(service, now + delay, delay, crashes)
        self._pending[service] = restart
        return restart

    def due(self, now: float) -> list[str]:
        """The crashed services whose restart time has come, soonest first. Each is named
        once: report the restart's outcome with ``started`` or ``crashed``."""
        ready = sorted(
            (restart for restart in self._pending.values() if restart.at <= now),
            key=lambda restart: restart.at,
        )
        for restart in ready:
            del self._pending[restart.service]
        return [restart.service for restart in ready]

    def next_due(self) -> float | None:
        """When the next restart is due; None if no service waits for one."""
        return min((restart.at for restart in self._pending.values()), default=None)


def exit_fields(returncode: int) -> dict[str, int | str]:
    """How a process ended, for a log line: ``{"signal": "SIGKILL"}`` or ``{"exit_code": 3}``
    (a negative ``returncode`` is the signal that killed it, as ``subprocess`` reports it)."""
    if returncode < 0:
        try:
            return {"signal": signal.Signals(-returncode).name}
        except ValueError:
            return {"signal": str(-returncode)}
    return {"exit_code": returncode}
