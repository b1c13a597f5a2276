"""Leadership changes against real replicas: the front-end follows them without client errors."""

from __future__ import annotations

import requests

from app.observe import replica_health
from tests.support import JSON, assert_replicas_identical, new_key, order


def test_leader_moved_behind_the_front_ends_back(cluster_factory):
    cluster = cluster_factory(env={"RESTOCK_INTERVAL": "3600"}, replicas=3)
    url = cluster.frontend_url
    assert order(requests, url, "Tux", 1).status_code == 201
    old_term = replica_health(cluster)[3]["term"]

    # Someone else makes replica 2 leader for a much higher term.
    moved = requests.post(
        f"{cluster.replica_urls[2]}/election",
        json={"term": old_term + 10},
        headers=cluster.internal_headers,
    )
    assert moved.status_code == 200
    health = replica_health(cluster)
    assert health[2]["role"] == "leader" and health[3]["role"] == "follower"

    # The deposed leader refuses orders itself ...
    direct = requests.post(
        f"{cluster.replica_urls[3]}/orders",
        json={"name": "Tux", "quantity": 1, "key": new_key()},
        headers={**JSON, **cluster.internal_headers},
    )
    assert direct.status_code == 421
    # ... and the front-end follows the new leader, which keeps leading: a healthy leader is
    # never replaced, not even by a higher replica.
    for _ in range(5):
        assert order(requests, url, "Tux", 1).status_code == 201
    health = replica_health(cluster)
    assert health[2]["role"] == "leader" and health[2]["term"] == old_term + 10
    assert health[3]["role"] == "follower"
    orders = assert_replicas_identical(cluster)
    assert len(orders) == 6


def test_election_for_a_term_not_above_the_replicas_is_refused(cluster_factory):
    cluster = cluster_factory(
        services=["redis", "catalog", "replica-1", "replica-2", "replica-3"], replicas=3
    )
    auth = cluster.internal_headers
    first = requests.post(f"{cluster.replica_urls[1]}/election", json={"term": 5}, headers=auth)
    assert first.status_code == 200 and first.json()["data"] == {"leader_id": 1, "term": 5}
    stale = requests.post(f"{cluster.replica_urls[2]}/election", json={"term": 5}, headers=auth)
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == 409
    assert replica_health(cluster)[1]["role"] == "leader"
