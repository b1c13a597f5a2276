"""Routing orders to the order replicas' leader, and following it when it changes.

The replicas elect their leader themselves (app/orders/elections.py); the front-end finds it
from their health replies (leader_choice.py), tells every replica, and looks again when the
leader stops answering or says it no longer leads. Each order carries one idempotency key
through every retry, so a retry after a failover can never buy twice. Every wait (health
checks, the order itself) is bounded by what is left of the request's deadline, so a client
gets its 503 in time.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import as_completed, wait
from dataclasses import dataclass
from typing import Any

from app.common.config import Settings
from app.common.errors import ApiError
from app.common.http import Reply, ServiceClient, ServiceUnavailable
from app.common.logs import log_event
from app.common.pools import ContextPool
from app.frontend import leader_choice
from app.frontend.cache import ProductCache
from app.frontend.metrics import FAILOVERS, LEADER_ID, LEADER_TERM

log = logging.getLogger(__name__)

DEADLINE_MESSAGE = (
    "The order service cannot commit orders right now; retry with the same Idempotency-Key."
)
# Replies a replica gives about the request itself: passed on to the client as they are.
_CLIENT_ERRORS = (400, 404, 422)
# "Not the leader": the replica placed nothing. Any other failure may have placed the order.
_MISDIRECTED = 421
_HEALTH_TIMEOUT = 0.5
_RETRY_PAUSE = 0.05
_SURVEY_MARGIN = 0.05  # beyond the health checks' own timeout, for the threads' hand-over
SURVEY_MAX_AGE = 1.0  # seconds the dashboard's survey of the replicas is reused


class Superseded(Exception):
    """While a call to the leader went unanswered, the replicas named another leader."""

    def __init__(self, leader: tuple[int, int]) -> None:
        super().__init__(f"replica {leader[0]} leads in term {leader[1]}")
        self.leader = leader


@dataclass(frozen=True)
class Placed:
    """A committed order as the front-end reports it."""

    number: int
    version: int | None  # the toy's catalog version after the purchase, when known
    replayed: bool  # an earlier request with the same key placed it; this one bought nothing


class OrderRouter:
    """Routes order requests to the current leader. Thread-safe; one per worker."""

    def __init__(self, settings: Settings, cache: ProductCache) -> None:
        self._cache = cache
        self._deadline = settings.order_deadline
        self._health_timeout = min(_HEALTH_TIMEOUT, settings.http_timeout)
        self._call_timeout = settings.leader_call_timeout
        self._clients = {
            rid: ServiceClient(url, settings.http_timeout, settings.require_internal_token())
            for rid, url in sorted(settings.replicas.items(), reverse=True)
        }
        # Both pools work on a request's behalf: their calls carry its id (ContextPool).
        self._pool = ContextPool(max_workers=len(self._clients), thread_name_prefix="rpc")
        self._survey_pool = ContextPool(max_workers=len(self._clients), thread_name_prefix="survey")
        self._survey_lock = threading.Lock()
        self._surveyed: tuple[float, dict[int, dict[str, Any] | None]] = (-math.inf, {})
        # Calls to the leader run here so that the request's thread can look at the replicas
        # while one goes unanswered; an abandoned call keeps its thread until its timeout.
        self._calls = ContextPool(
            max_workers=4 * settings.frontend_threads, thread_name_prefix="leader-call"
        )
        # How often, and how patiently, the replicas are asked while a call goes unanswered:
        # half an election timeout each, so a new leader is found about when it is elected.
        self._watch = settings.election_timeout / 2
        self._lock = threading.Lock()
        self._leader: tuple[int, int] | None = None  # (leader id, term)
        self._last_leader_id: int | None = None  # survives _forget, to log failovers
        self._leaderless = False  # to log "no leader available" once per outage
        self._selecting: threading.Event | None = None

    @property
    def leader(self) -> tuple[int, int] | None:
        """The (id, term) this worker sends orders to, or None if it has none yet."""
        with self._lock:
            return self._leader

    def find_leader(self, timeout: float) -> int | None:
        """The leader's id, checked with its own health, else chosen (and if need be
        elected) within ``timeout``."""
        deadline = time.monotonic() + timeout
        leader = self.leader
        if leader is not None and not self._still_leads(leader[0], deadline):
            self._forget(leader[0])
        return self._current_or_select(deadline)

    def survey(self) -> dict[int, dict[str, Any] | None]:
        """Every replica's health reply by id (None: no answer in time), for the dashboard.

        The replicas are asked all at once on a pool of their own, so however often this is
        called it cannot delay finding the leader; one survey runs at a time, and its answers
        are reused for SURVEY_MAX_AGE, so callers cost the replicas one survey a second."""
        with self._survey_lock:
            taken, answers = self._surveyed
            if time.monotonic() - taken < SURVEY_MAX_AGE:
                return answers
            deadline = time.monotonic() + self._health_timeout
            checks = {
                rid: self._survey_pool.submit(self._health, rid, deadline) for rid in self._clients
            }
            wait(checks.values(), timeout=self._health_timeout + _SURVEY_MARGIN)
            answers = {
                rid: check.result() if check.done() else None
                for rid, check in sorted(checks.items())
            }
            for check in checks.values():
                check.cancel()
            self._surveyed = (time.monotonic(), answers)
            return answers

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._survey_pool.shutdown(wait=False, cancel_futures=True)
        self._calls.shutdown(wait=False, cancel_futures=True)
        for client in self._clients.values():
            client.close()

    # Public operations.

    def place_order(self, name: str, quantity: int, key: str) -> Placed:
        body = {"name": name, "quantity": quantity, "key": key}
        reply, retried = self._call_leader("POST", "/orders", body)
        version = reply.data.get("version")
        # Read-your-writes: the next GET of this toy must not see the cached pre-order stock.
        self._cache.invalidate(name)
        return Placed(
            number=int(reply.data["order_number"]),
            version=version if isinstance(version, int) else None,
            # Found in the log after one of this request's own tries may have placed it: this
            # request created it, not an earlier one.
            replayed=reply.data.get("replayed") is True and not retried,
        )

    def get_order(self, number: int) -> dict[str, Any]:
        data = self._call_leader("GET", f"/orders/{number}", None)[0].data
        return {
            "number": int(data["number"]),
            "name": data["name"],
            "quantity": int(data["quantity"]),
        }

    # Requests with failover.

    def _call_leader(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[Reply, bool]:
        """Send to the leader until it answers for good or the deadline passes. Also says
        whether an earlier try may have been carried out (no answer, or any failure but 421)."""
        deadline = time.monotonic() + self._deadline
        retried = False
        while (remaining := _left(deadline)) > 0:
            leader_id = self._current_or_select(deadline)
            if leader_id is None:
                time.sleep(min(_RETRY_PAUSE, _left(deadline)))
                continue
            try:
                reply = self._send(leader_id, method, path, body, remaining, deadline)
            except Superseded as exc:
                retried = True
                self._replace(leader_id, exc.leader)
                continue
            except ServiceUnavailable as exc:
                log_event(
                    log, "leader unreachable", logging.WARNING, leader=leader_id, error=exc.reason
                )
                retried = retried or exc.maybe_delivered
                self._forget(leader_id)
                continue
            if reply.status == 200:
                return reply, retried
            if reply.status in _CLIENT_ERRORS:
                raise ApiError(reply.status, reply.error_message or "The order was refused.")
            if reply.status == _MISDIRECTED:
                self._forget(leader_id)
                continue
            # 503 (cannot commit right now) or anything unexpected: pause, then make sure the
            # leader still leads before trying again.
            retried = True
            time.sleep(min(_RETRY_PAUSE, _left(deadline)))
            if not self._still_leads(leader_id, deadline):
                self._forget(leader_id)
        raise ApiError(503, DEADLINE_MESSAGE)

    def _send(
        self,
        leader_id: int,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        remaining: float,
        deadline: float,
    ) -> Reply:
        """The leader's reply. While none comes, every half ELECTION_TIMEOUT the replicas
        are asked who leads: a leader cut from its peers may never answer (its commit cannot
        happen), and once another has taken over, waiting on it only delays the order."""
        call = self._calls.submit(
            self._clients[leader_id].request,
            method,
            path,
            json=body,
            timeout=min(self._call_timeout, remaining),
        )
        while True:
            try:
                return call.result(timeout=self._watch)
            except FutureTimeout:
                newer = self._find(deadline, self._watch, unlike=leader_id)
                if newer is not None:
                    raise Superseded(newer) from None

    def _still_leads(self, leader_id: int, deadline: float) -> bool:
        health = self._health(leader_id, deadline)
        return health is not None and health.get("role") == "leader"

    def _replace(self, leader_id: int, newer: tuple[int, int]) -> None:
        """Use ``newer`` instead of ``leader_id``; unless another thread has moved on."""
        with self._lock:
            if self._leader is not None and self._leader[0] != leader_id:
                return
            self._leader = newer
        self._announce(*newer)

    def _forget(self, leader_id: int) -> None:
        """Stop using ``leader_id``; unless another thread has already moved on."""
        with self._lock:
            if self._leader is not None and self._leader[0] == leader_id:
                self._leader = None

    # Selection: one thread selects, the others wait for its outcome.

    def _current_or_select(self, deadline: float) -> int | None:
        with self._lock:
            if self._leader is not None:
                return self._leader[0]
            done = self._selecting
            selector = done is None
            if selector:
                done = self._selecting = threading.Event()
        if not selector:
            done.wait(_left(deadline))
            with self._lock:
                return self._leader[0] if self._leader is not None else None
        chosen: tuple[int, int] | None = None
        try:
            chosen = self._select(deadline)
        finally:
            with self._lock:
                self._leader = chosen
                self._selecting = None
            done.set()
        return chosen[0] if chosen is not None else None

    def _select(self, deadline: float) -> tuple[int, int] | None:
        """Health-check the replicas and take the one that leads."""
        chosen = self._find(deadline, self._health_timeout)
        if chosen is not None:
            self._announce(*chosen)
            return chosen
        with self._lock:
            first_failure, self._leaderless = not self._leaderless, True
        LEADER_ID.set(0)
        if first_failure:
            log_event(log, "no leader available", logging.WARNING)
        return None

    def _find(
        self, deadline: float, timeout: float, unlike: int | None = None
    ) -> tuple[int, int] | None:
        """The leader the replicas' health replies name (leader_choice.py), other than
        ``unlike``. The first replies that name one decide: a silent replica (frozen, cut
        off) is not waited for, and one that names a newer leader later costs one retry."""
        checks = {
            self._pool.submit(self._health, rid, deadline, timeout): rid for rid in self._clients
        }
        answers: dict[int, dict[str, Any] | None] = dict.fromkeys(self._clients)
        with contextlib.suppress(FutureTimeout):
            for check in as_completed(checks, timeout=timeout + _SURVEY_MARGIN):
                answers[checks[check]] = check.result()
                chosen = leader_choice.choose(answers)
                if chosen is not None and chosen[0] != unlike:
                    return chosen
        return None

    def _announce(self, leader_id: int, term: int) -> None:
        """Tell every replica who leads (best effort, in the background) and log the change."""
        with self._lock:
            previous, self._last_leader_id = self._last_leader_id, leader_id
            self._leaderless = False
        for client in self._clients.values():
            self._pool.submit(self._notify, client, leader_id, term)
        LEADER_ID.set(leader_id)
        LEADER_TERM.set(term)
        if previous != leader_id:
            log_event(log, "leader selected", leader=leader_id, term=term)
            if previous is not None:
                FAILOVERS.inc()
                log_event(log, "failover", logging.WARNING, **{"from": previous, "to": leader_id})

    def _notify(self, client: ServiceClient, leader_id: int, term: int) -> None:
        with contextlib.suppress(ServiceUnavailable):
            client.post(
                "/leader", json={"leader_id": leader_id, "term": term}, timeout=self._health_timeout
            )

    def _health(
        self, rid: int, deadline: float, timeout: float | None = None
    ) -> dict[str, Any] | None:
        timeout = min(timeout or self._health_timeout, _left(deadline))
        if timeout <= 0:
            return None
        try:
            reply = self._clients[rid].get("/health", timeout=timeout)
        except ServiceUnavailable:
            return None
        if reply.status != 200 or not isinstance(reply.data, dict):
            return None
        return reply.data


def _left(deadline: float) -> float:
    """Seconds until ``deadline`` (a time.monotonic() value), never below zero."""
    return max(0.0, deadline - time.monotonic())
