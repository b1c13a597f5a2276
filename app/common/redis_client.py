"""The one way the services make a Redis client, for a single Redis or a Sentinel-managed one.

Both the front-end's cache and the catalog's invalidation publisher need the same client: the
store's timeouts on every call and connection, and no retries inside redis-py (each caller
handles a failure itself, at once). With a ``redis+sentinel://`` REDIS_URL (docs/operations.md)
the client asks the Sentinels for the current primary whenever it opens a connection, so after
a failover new connections reach the promoted replica.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from app.common.config import is_sentinel_url, parse_sentinel_url


def redis_client(url: str, timeout: float, health_check_interval: int = 0) -> redis.Redis:
    """A client of the Redis ``url`` names, or of the primary its Sentinels name.

    ``timeout`` bounds every connect and every call; ``health_check_interval`` (seconds, 0:
    never) has a connection idle that long PINGed before it is used again."""
    limits: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    options = {**limits, "health_check_interval": health_check_interval}
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    target = parse_sentinel_url(url)
    sentinels = Sentinel(
        target.sentinels, sentinel_kwargs={**limits, "password": target.sentinel_password}
    )
    return sentinels.master_for(
        target.service,
        db=target.db,
        username=target.username,
        password=target.password,
        **options,
    )
