"""Redis cache-aside for products, with lease-guarded fills and pub/sub invalidation.

The protocol is in docs/design.md ("Cache protocol"). In short: a miss takes a lease token,
reads the catalog, and stores the value only if the lease still holds that token; an
invalidation deletes value and lease (the catalog's publisher does, in the same script that
announces it: ``app.common.invalidation``), so a value read before an invalidation can never
be stored after it. Each worker runs one listener thread; while it is not subscribed the worker
bypasses the cache, and every (re)subscription first drops all cached products, because
invalidations may have been missed while the subscription was down.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
import redis

from app.common import invalidation
from app.common.config import Settings
from app.common.logs import log_event
from app.common.redis_client import redis_client
from app.frontend.metrics import CACHE_FILLS, CACHE_LOOKUPS, INVALIDATION_LAG, INVALIDATIONS

log = logging.getLogger(__name__)

Product = dict[str, Any]

# KEYS[1] product, KEYS[2] lease; ARGV[1] our token, ARGV[2] the value.
_STORE_IF_LEASED = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""

_POLL_SECONDS = 0.1
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 2.0
_SCAN_BATCH = 500
_HEALTH_CHECK_SECONDS = 5  # a connection idle this long is PINGed before use
RECENT_INVALIDATIONS = 20


class _Resync(Exception):
    """The request path lost a write to Redis; the listener must flush and resubscribe."""


class ProductCache:
    """Per-worker view of the shared product cache. Thread-safe."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.cache_enabled
        self._prefix = settings.cache_prefix
        self._channel = settings.invalidation_channel
        self._lease_ttl_ms = settings.lease_ttl_ms
        self._subscribed = threading.Event()
        self._resync = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redis_ok = True
        self._redis: redis.Redis | None = None
        # The latest invalidations this worker received, newest first (for the dashboard).
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_INVALIDATIONS)
        if self.enabled:
            # No client-side retries (redis_client): a failed call must surface at once so the
            # request is served from the catalog, and so that a dropped subscription is never
            # silently re-established by redis-py without our flush. With Sentinels, every
            # new connection (and so every resubscription and its flush) goes to the primary
            # they name at that moment.
            self._redis = redis_client(
                settings.effective_redis_url,
                settings.redis_timeout,
                health_check_interval=_HEALTH_CHECK_SECONDS,
            )
            self._store = self._redis.register_script(_STORE_IF_LEASED)

    # Keys.

    def product_key(self, name: str) -> str:
        return invalidation.product_key(self._prefix, name)

    def lease_key(self, name: str) -> str:
        return invalidation.lease_key(self._prefix, name)

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    @property
    def usable(self) -> bool:
        return self.enabled and self._subscribed.is_set()

    # Reads.

    def get(self, name: str, load: Callable[[str], Product | None]) -> Product | None:
        """The product from the cache, or from ``load`` (the catalog) on a miss.

        ``load`` returns None for an unknown toy; that answer is not cached.
        """
        if not self.usable:
            CACHE_LOOKUPS.labels("bypass").inc()
            return load(name)
        cached = self.lookup(name)
        if cached is not None:
            CACHE_LOOKUPS.labels("hit").inc()
            return cached
        if not self.usable:  # the lookup failed: no second Redis timeout for the lease
            CACHE_LOOKUPS.labels("bypass").inc()
            return load(name)
        CACHE_LOOKUPS.labels("miss").inc()
        token = self.begin_fill(name)
        product = load(name)
        if token is not None and product is not None:
            self.finish_fill(name, token, product)
        return product

    def lookup(self, name: str) -> Product | None:
        try:
            raw = self._redis.get(self.product_key(name))
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        self._succeeded()
        if raw is None:
            return None
        try:
            return orjson.loads(raw)
        except ValueError:
            return None

    def begin_fill(self, name: str) -> str | None:
        """Take the fill lease for ``name``; the token, or None if Redis failed."""
        token = secrets.token_hex(8)
        try:
            self._redis.set(self.lease_key(name), token, px=self._lease_ttl_ms)
        except redis.OutOfMemoryError:
            _refused()
            return None
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        return token

    def finish_fill(self, name: str, token: str, product: Product) -> bool:
        """Store ``product`` if our lease still holds; True if it was stored."""
        try:
            stored = self._store(
                keys=[self.product_key(name), self.lease_key(name)],
                args=[token, orjson.dumps(product)],
            )
        except redis.OutOfMemoryError:
            _refused()
            return False
        except redis.RedisError as exc:
            self._failed(exc)
            return False
        CACHE_FILLS.labels("stored" if stored else "lost").inc()
        return bool(stored)

    # Invalidation.

    def invalidate(self, name: str) -> None:
        """Drop ``name``'s value and lease (after this worker's own order). Skipped while
        this worker bypasses the cache: it reads nothing from it then, and flushes it all
        before it uses it again; so an order during a Redis outage pays no Redis timeout."""
        if not self.usable:
            return
        try:
            self._redis.delete(self.product_key(name), self.lease_key(name))
        except redis.RedisError as exc:
            self._failed(exc)

    def flush(self) -> int:
        """Delete every product and lease key under our prefix; how many were deleted."""
        deleted = 0
        for kind in ("product", "lease"):
            batch: list[bytes] = []
            for key in self._redis.scan_iter(match=f"{self._prefix}:{kind}:*", count=_SCAN_BATCH):
                batch.append(key)
                if len(batch) >= _SCAN_BATCH:
                    deleted += self._redis.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += self._redis.unlink(*batch)
        return deleted

    def ping(self) -> bool:
        if not self.enabled:
            return False
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    # The listener thread.

    def start(self) -> None:
        """Start the listener thread (only when the cache is enabled)."""
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._listen, name="cache-listener", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._redis is not None:
            self._redis.close()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def _listen(self) -> None:
        backoff = _BACKOFF_FIRST
        while not self._stop.is_set():
            pubsub = self._redis.pubsub()
            try:
                if not self._subscribe(pubsub):
                    return
                backoff = _BACKOFF_FIRST
                while not self._stop.is_set():
                    if self._resync.is_set():
                        raise _Resync
                    message = pubsub.get_message(timeout=_POLL_SECONDS)
                    if message is not None and message["type"] == "message":
                        self._on_message(message["data"])
            except (redis.RedisError, OSError, _Resync) as exc:
                if self._subscribed.is_set() or isinstance(exc, _Resync):
                    log_event(log, "cache subscription lost", logging.WARNING, error=str(exc))
                self._subscribed.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            finally:
                self._subscribed.clear()
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()

    def _subscribe(self, pubsub: redis.client.PubSub) -> bool:
        """Subscribe, flush, then mark the cache usable; False if stopped meanwhile."""
        self._resync.clear()
        pubsub.subscribe(self._channel)
        # Wait for Redis to confirm: only from then on are no invalidations missed.
        while True:
            message = pubsub.get_message(timeout=_POLL_SECONDS)
            if self._stop.is_set():
                return False
            if message is not None and message["type"] == "subscribe":
                break
        # Anything cached before this point may have missed an invalidation.
        flushed = self.flush()
        self._succeeded()
        self._subscribed.set()
        log_event(log, "cache subscribed", channel=self._channel, flushed=flushed)
        return True

    def _on_message(self, data: bytes) -> None:
        INVALIDATIONS.inc()
        try:
            message = orjson.loads(data)
            name = message["product"]
            if not isinstance(name, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            # We cannot tell which toy changed; dropping everything is always safe.
            log_event(log, "unreadable invalidation; flushing", logging.WARNING, data=data[:200])
            self.flush()
            return
        if message.get("deleted") is not True:
            # Not from the catalog's script (which deletes the entry and its lease before it
            # announces the change, and says so): remove them here. A failure raises into
            # the listener, which resubscribes and flushes.
            self._redis.delete(self.product_key(name), self.lease_key(name))
        received = time.time()
        published = message.get("published_at")
        lag = None
        if isinstance(published, int | float) and not isinstance(published, bool):
            lag = max(0.0, received - published)
            INVALIDATION_LAG.observe(lag)
        version, reason = message.get("version"), message.get("reason")
        self.recent.appendleft(
            {
                "product": name,
                "version": version if isinstance(version, int) else None,
                "reason": reason if isinstance(reason, str) else None,
                "received_at": received,
                "lag_seconds": lag,
            }
        )

    # Redis health, logged on transitions only.

    def _failed(self, exc: Exception) -> None:
        """A Redis call on the request path failed: stop using the cache until the listener
        has resubscribed and flushed. An invalidation may have been missed meanwhile (or our
        own delete after an order failed), and a slow Redis would otherwise cost every read
        its timeouts."""
        self._subscribed.clear()
        self._resync.set()
        if self._redis_ok:
            self._redis_ok = False
            log_event(
                log, "redis unavailable; serving from the catalog", logging.WARNING, error=str(exc)
            )

    def _succeeded(self) -> None:
        if not self._redis_ok:
            self._redis_ok = True
            log_event(log, "redis reachable again")


def _refused() -> None:
    """Redis is at maxmemory with nothing it may evict (client buffers fill the rest) and
    refused a fill's write. Nothing was written, so nothing can be stale: this one read goes
    uncached, and the cache stays in use (no flush, no resubscription)."""
    CACHE_FILLS.labels("refused").inc()
