"""An exact LRU cache replayed over a request sequence: the yardstick for Redis's
approximated LRU (``maxmemory-policy allkeys-lru`` samples keys instead of keeping an order)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


def ideal_lru_hits(requests: Iterable[str], capacity: int) -> int:
    """How many of ``requests`` an exact LRU cache of ``capacity`` entries would serve,
    starting empty and filling on every miss."""
    if capacity <= 0:
        return 0
    cache: OrderedDict[str, None] = OrderedDict()
    hits = 0
    for key in requests:
        if key in cache:
            hits += 1
            cache.move_to_end(key)
            continue
        cache[key] = None
        if len(cache) > capacity:
            cache.popitem(last=False)
    return hits
