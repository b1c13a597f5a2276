"""How a change of a toy reaches the front-end's cache (docs/design.md, "Cache protocol"):
the keys a toy has in the cache, and the one Redis script the catalog's publisher runs for
each change, which deletes those keys and tells every front-end worker, in one step.

The deletion is done once, at the source, rather than by every worker that hears of the
change: with four workers that was four DELs per order, most of the front-end's CPU under
load (docs/performance.md). A worker still reads each message: it counts it and its lag,
shows it on the dashboard, flushes everything when it cannot read one, and removes the keys
itself when a message does not say they are gone.
"""

from __future__ import annotations

import json
import time


def product_key(prefix: str, name: str) -> str:
    return f"{prefix}:product:{name}"


def lease_key(prefix: str, name: str) -> str:
    return f"{prefix}:lease:{name}"


# KEYS[1] the product, KEYS[2] its fill lease; ARGV[1] the channel, ARGV[2] the message.
# Deleting the lease too is what stops a fill that read the catalog before the change from
# storing its value after it.
INVALIDATE = """
redis.call('DEL', KEYS[1], KEYS[2])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""


def message(product: str, version: int, reason: str) -> str:
    """The message of the INVALIDATE script. ``deleted`` tells the workers the keys are gone
    already; for a message without it (another publisher, an operator's redis-cli) each
    worker removes them itself, as the contract has it."""
    return json.dumps(
        {
            "product": product,
            "version": version,
            "reason": reason,
            "deleted": True,
            "published_at": time.time(),  # for the front-end's invalidation lag
        }
    )
