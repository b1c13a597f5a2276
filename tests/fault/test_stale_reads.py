"""A deposed leader that has not noticed yet must not answer an order lookup from its stale
log (read-index), and a leader that hears from no quorum steps down (check-quorum)."""

from __future__ import annotations

import signal
import time

import pytest
import requests

from app.observe import current_leader
from tests.support import NO_RESTOCK, new_key, order

pytestmark = pytest.mark.fault


def test_a_paused_and_deposed_leader_never_answers_a_stale_lookup(cluster_factory):
    cluster = cluster_factory(env=NO_RESTOCK)
    url = cluster.frontend_url
    assert order(requests, url, "Tux", 1).status_code == 201
    cluster.kill("replica-3", signal.SIGSTOP)  # the leader freezes, still "leader" inside
    deadline = time.monotonic() + 15
    while (reply := order(requests, url, "Fox", 1, new_key())).status_code != 201:
        assert time.monotonic() < deadline, reply.text
    number = reply.json()["data"]["order_number"]
    assert current_leader(cluster) == 2
    cluster.kill("replica-3", signal.SIGCONT)
    direct = requests.get(
        f"{cluster.replica_urls[3]}/orders/{number}", headers=cluster.internal_headers, timeout=5
    )
    # Before read-index this was a 404: the old leader's log lacks the newer order.
    assert direct.status_code in (421, 503), direct.text
    through = requests.get(f"{url}/orders/{number}", timeout=10)
    assert through.status_code == 200 and through.json()["data"]["name"] == "Fox"


def test_a_leader_cut_off_from_both_followers_steps_down_within_an_election_timeout(
    cluster_factory,
):
    cluster = cluster_factory(env=NO_RESTOCK)
    assert order(requests, cluster.frontend_url, "Tux", 1).status_code == 201
    cluster.kill("replica-1", signal.SIGSTOP)
    cluster.kill("replica-2", signal.SIGSTOP)
    try:
        started = time.monotonic()
        health = f"{cluster.replica_urls[3]}/health"  # only 3: the others are frozen
        while requests.get(health, timeout=1).json()["data"]["role"] == "leader":
            assert time.monotonic() - started < 2.0, "the leader kept its role without a quorum"
            time.sleep(0.05)
        stepped_down = time.monotonic() - started
    finally:
        cluster.kill("replica-1", signal.SIGCONT)
        cluster.kill("replica-2", signal.SIGCONT)
    assert stepped_down < 1.0  # ELECTION_TIMEOUT 0.5 s, checked every 0.125 s
    assert order(requests, cluster.frontend_url, "Tux", 1).status_code == 201
