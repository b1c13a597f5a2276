"""The front-end's own Prometheus metrics (listed in docs/operations.md).

Every worker counts what it does and the counters are summed over the workers: each worker
has its own subscription, so each receives every invalidation, and each finds the leader
itself, so one change of leader counts once in every worker that noticed it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CACHE_LOOKUPS = Counter(
    "toystore_frontend_cache_lookups",
    "Product reads by what the cache did: hit, miss (read from the catalog and filled), or"
    " bypass (cache off, or not subscribed to invalidations).",
    ["result"],
)
CACHE_FILLS = Counter(
    "toystore_frontend_cache_fills",
    "Fills after a miss: stored, lost (an invalidation took the lease meanwhile, so the"
    " value read from the catalog may be old and is not stored), or refused (Redis at"
    " maxmemory with nothing left to evict).",
    ["result"],
)
INVALIDATION_LAG = Histogram(
    "toystore_frontend_invalidation_lag_seconds",
    "From the catalog publishing an invalidation to a worker receiving it (the two clocks"
    " are the machines' wall clocks).",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
INVALIDATIONS = Counter(
    "toystore_frontend_invalidations_received",
    "Cache invalidations received from the catalog, summed over the workers.",
)
FAILOVERS = Counter(
    "toystore_frontend_leader_failovers",
    "Times a worker moved its orders from one leader to another.",
)
LEADER_ID = Gauge(
    "toystore_frontend_leader_id",
    "The order leader the front-end last chose (0: none found).",
    multiprocess_mode="livemostrecent",
)
LEADER_TERM = Gauge(
    "toystore_frontend_leader_term",
    "The term of the order leader the front-end last chose, highest over the workers.",
    multiprocess_mode="livemax",
)
