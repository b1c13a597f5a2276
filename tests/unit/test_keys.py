"""Expiring idempotency keys (app/orders/keys.py): which log key a client's key stands for."""

from __future__ import annotations

from app.orders.keys import live_key
from app.orders.replication import Entry

TTL = 1000


def lookup(*entries: Entry):
    by_key = {entry.key: entry for entry in entries}
    return by_key.get


def test_a_new_key_is_logged_as_it_is():
    assert live_key("k", lookup(), now_ms=5000, ttl_ms=TTL) == ("k", None)


def test_a_live_key_finds_its_order():
    first = Entry(0, 1, "Tux", 1, "k", created=4500)
    assert live_key("k", lookup(first), now_ms=5000, ttl_ms=TTL) == ("k", first)


def test_an_expired_key_places_a_new_order_under_a_log_key_of_its_own():
    first = Entry(3, 1, "Tux", 1, "k", created=1000)
    assert live_key("k", lookup(first), now_ms=2000, ttl_ms=TTL) == ("k~3", None)


def test_each_reuse_after_expiry_follows_the_chain_to_the_newest_order():
    first = Entry(3, 1, "Tux", 1, "k", created=1000)
    second = Entry(9, 1, "Fox", 2, "k~3", created=2500)
    third = Entry(20, 2, "Fox", 2, "k~9", created=4000)
    entries = lookup(first, second, third)
    assert live_key("k", entries, now_ms=4100, ttl_ms=TTL) == ("k~9", third)
    assert live_key("k", entries, now_ms=5000, ttl_ms=TTL) == ("k~20", None)


def test_entries_without_a_time_never_expire():
    legacy = Entry(0, 1, "Tux", 1, "k")
    assert live_key("k", lookup(legacy), now_ms=10**15, ttl_ms=TTL) == ("k", legacy)
