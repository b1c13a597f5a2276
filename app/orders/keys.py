"""Idempotency keys that expire: which log key a client's key stands for now.

A client's ``Idempotency-Key`` deduplicates its orders for IDEMPOTENCY_KEY_TTL after the order
it first placed; then the key is free again and the next order with it is a new order. Every
key in the log and at the catalog stays unique all the same: the first order of client key
``K`` is logged under ``K`` itself, and an order placed after the order under log key ``L``
expired goes under ``K~<index of L>``. ``~`` is not allowed in a client's key, so no client
key can collide with one of these.

Expiry is judged by the leader at the time of the request against the ``created`` time the
entry carries in the replicated log (the wall clock of the leader that appended it), so every
leader reaches the same verdict up to the skew between their clocks. Entries logged before
entries had a time (``created == 0``) never expire.
"""

from __future__ import annotations

from collections.abc import Callable

from app.orders.replication import Entry

SEPARATOR = "~"


def live_key(
    key: str, entry_for_key: Callable[[str], Entry | None], now_ms: int, ttl_ms: int
) -> tuple[str, Entry | None]:
    """The log key an order with client key ``key`` goes under at ``now_ms``, and the entry
    already logged under it (None: the order is new)."""
    log_key = key
    while (entry := entry_for_key(log_key)) is not None and expired(entry, now_ms, ttl_ms):
        log_key = f"{key}{SEPARATOR}{entry.index}"
    return log_key, entry


def expired(entry: Entry, now_ms: int, ttl_ms: int) -> bool:
    return entry.created > 0 and now_ms - entry.created >= ttl_ms
