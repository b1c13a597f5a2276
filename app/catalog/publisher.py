"""Publishes cache invalidations from a background thread: for each changed toy, its cache
entry and fill lease deleted and a message on the pub/sub channel, in one script
(``app.common.invalidation``).

Changes are queued without blocking (a purchase must never wait on Redis) and coalesced per
toy, keeping the highest version: the front-end only needs to know "this toy changed", so
while Redis is down the queue stays bounded by the number of toys. Failed batches are put back
and retried with backoff.
"""

from __future__ import annotations

import logging
import threading

from app.common import invalidation
from app.common.logs import log_event
from app.common.redis_client import redis_client

log = logging.getLogger(__name__)


class InvalidationPublisher:
    def __init__(
        self,
        redis_url: str,
        channel: str,
        prefix: str,
        timeout: float,
        initial_backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        self.channel = channel
        self.prefix = prefix
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        # No retries inside redis-py (redis_client): this thread does its own backoff, and a
        # retry there would only delay noticing that Redis is gone. With Sentinels, the retry
        # of a failed batch goes to the primary they name by then.
        self._client = redis_client(redis_url, timeout)
        self._invalidate = self._client.register_script(invalidation.INVALIDATE)
        self._pending: dict[str, tuple[int, str]] = {}
        self._in_flight = False
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._failing = False
        self._thread = threading.Thread(
            target=self._run, name="invalidation-publisher", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._client.close()

    def submit(self, product: str, version: int, reason: str) -> None:
        """Queue an invalidation; never blocks on Redis."""
        with self._cond:
            queued = self._pending.get(product)
            if queued is None or queued[0] < version:
                self._pending[product] = (version, reason)
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far has been published; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._in_flight, timeout)

    def _run(self) -> None:
        backoff = self._initial_backoff
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping.is_set())
                if self._stopping.is_set():
                    return
                batch, self._pending = self._pending, {}
                self._in_flight = True
            try:
                self._publish(batch)
            except Exception as exc:  # the thread must outlive any failure; all are retried
                with self._cond:
                    self._requeue(batch)
                    self._in_flight = False
                if not self._failing:
                    self._failing = True
                    log_event(
                        log,
                        "publishing invalidations failed; retrying",
                        level=logging.WARNING,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            with self._cond:
                self._in_flight = False
                self._cond.notify_all()
            if self._failing:
                self._failing = False
                log_event(log, "publishing invalidations recovered")
            backoff = self._initial_backoff

    def _publish(self, batch: dict[str, tuple[int, str]]) -> None:
        assert self._client is not None
        pipe = self._client.pipeline(transaction=False)
        for product, (version, reason) in batch.items():
            self._invalidate(
                keys=[
                    invalidation.product_key(self.prefix, product),
                    invalidation.lease_key(self.prefix, product),
                ],
                args=[self.channel, invalidation.message(product, version, reason)],
                client=pipe,
            )
        pipe.execute()

    def _requeue(self, batch: dict[str, tuple[int, str]]) -> None:
        # Called with the lock held. Newer changes queued meanwhile win.
        for product, (version, reason) in batch.items():
            queued = self._pending.get(product)
            if queued is None or queued[0] < version:
                self._pending[product] = (version, reason)
