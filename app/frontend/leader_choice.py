"""Which replica the front-end sends orders to, as pure logic: the replicas' health replies
in, a choice out (``tests/unit/test_leader_choice.py``).

The replicas elect their leader themselves (``app/orders/elections.py``); the front-end only
finds it. A replica qualifies when it says it leads and is ready (its log is on a majority),
and no replica that answered has seen a newer term: a leader behind the newest term has been
superseded, or is cut off from its quorum and about to step down (check-quorum), and orders
sent to it could not commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Health = Mapping[str, Any]


def choose(healths: Mapping[int, Health | None]) -> tuple[int, int] | None:
    """The (id, term) of the leader to use, or None while there is none (an election is due
    or under way among the replicas). ``None`` for a replica means it did not answer."""
    answered = {rid: health for rid, health in healths.items() if health is not None}
    newest = max((term(health) for health in answered.values()), default=0)
    leaders = [
        (term(health), rid)
        for rid, health in answered.items()
        if leads(health) and term(health) >= newest
    ]
    if not leaders:
        return None
    leader_term, rid = max(leaders)
    return rid, leader_term


def term(health: Health) -> int:
    value = health.get("term")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def leads(health: Health) -> bool:
    return health.get("role") == "leader" and health.get("ready") is True
