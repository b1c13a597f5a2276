"""The store in the network lab: every service on its own host, and each kind of cut really
cutting (checked with TCP connects between the hosts and with the replicas' commit indexes).

What the store does about a cut is logged (``pytest tests/netlab --log-cli-level=INFO`` shows
it), and only what it already promises is asserted: orders with one replica of three
unreachable, and a store that serves and converges again once healed.
"""

from __future__ import annotations

import logging
import time
import uuid

import pytest
import requests

from app.cluster import replica_name
from app.common.logs import log_event
from app.netlab.hosts import run
from app.netlab.lab import CLIENT, Lab
from app.netlab.links import HEALED, isolate, moving, one_way, partial, symmetric
from app.observe import current_leader, replica_health, wait_converged

pytestmark = pytest.mark.netlab
log = logging.getLogger(__name__)

REFUSED = 0.5  # seconds a TCP connect to a cut peer is given before it counts as blocked


def _order(lab: Lab, timeout: float = 15.0) -> tuple[int | str, float]:
    """One order through the front-end, from the root namespace: its status and seconds."""
    start = time.monotonic()
    try:
        status: int | str = requests.post(
            f"{lab.frontend_url}/orders",
            json={"name": "Tux", "quantity": 1},
            headers={"Idempotency-Key": uuid.uuid4().hex},
            timeout=timeout,
        ).status_code
    except requests.RequestException as exc:
        status = type(exc).__name__
    return status, time.monotonic() - start


def _commit_indexes(lab: Lab) -> dict[int, int]:
    return {rid: h["commit_index"] for rid, h in replica_health(lab.cluster).items()}


def _leader_and_follower(lab: Lab) -> tuple[str, str]:
    assert _order(lab)[0] == 201  # a leader is chosen and serving
    leader = current_leader(lab.cluster)
    assert leader is not None
    follower = min(rid for rid in lab.cluster.replica_urls if rid != leader)
    return replica_name(leader), replica_name(follower)


def _wait_commit(lab: Lab, name: str, at_least: int, timeout: float = 10.0) -> int:
    rid = int(name.split("-")[1])
    deadline = time.monotonic() + timeout
    while (index := _commit_indexes(lab).get(rid, -1)) < at_least:
        assert time.monotonic() < deadline, f"{name} stayed at commit index {index}"
        time.sleep(0.05)
    return index


def test_every_service_runs_inside_its_own_host(lab: Lab) -> None:
    for name, host in lab.hosts.items():
        if name == CLIENT:
            continue
        assert run(["ip", "netns", "identify", str(lab.cluster.pid(name))]).strip() == host.netns
        assert lab.cluster.is_healthy(name)  # seen from the root namespace, through the bridge


def test_shoppers_on_the_client_host_order_through_the_front_end(healed: Lab) -> None:
    lab = healed
    done = lab.run_on(
        CLIENT,
        [lab.toystore, "client", "--url", lab.frontend_url, "--iterations", "5", "--p", "1"],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "orders: 5 placed and checked" in done.stdout


def test_symmetric_cut_stops_the_leaders_appends_to_a_follower_until_healed(
    healed: Lab,
) -> None:
    lab = healed
    leader, follower = _leader_and_follower(lab)
    lab.links.cut(symmetric(leader, follower))
    assert not lab.can_connect(leader, follower, REFUSED)
    assert not lab.can_connect(follower, leader, REFUSED)
    assert lab.can_connect("frontend", follower)  # only that one link is cut

    before = _commit_indexes(lab)
    assert [_order(lab)[0] for _ in range(5)] == [201] * 5  # two of three still commit
    for rid in before:
        if replica_name(rid) != follower:
            _wait_commit(lab, replica_name(rid), before[rid] + 5)
    stuck = int(follower.split("-")[1])
    assert _commit_indexes(lab)[stuck] == before[stuck], "the cut follower still got appends"

    lab.links.heal()
    assert lab.can_connect(leader, follower)
    assert wait_converged(lab.cluster, timeout=10)


def test_one_way_cut_blocks_only_what_its_source_sends(healed: Lab) -> None:
    lab = healed
    leader, follower = _leader_and_follower(lab)
    rid = int(follower.split("-")[1])

    # The leader cannot reach the follower: its appends stop, the follower's calls still work.
    lab.links.apply(one_way(leader, follower))
    assert not lab.can_connect(leader, follower, REFUSED)
    assert lab.can_connect(follower, leader)
    stuck = _commit_indexes(lab)[rid]
    assert [_order(lab)[0] for _ in range(3)] == [201] * 3
    assert _commit_indexes(lab)[rid] == stuck

    # The other way round: the leader's appends (its own connections) reach the follower again.
    lab.links.apply(one_way(follower, leader))
    assert lab.can_connect(leader, follower)
    assert not lab.can_connect(follower, leader, REFUSED)
    assert _order(lab)[0] == 201
    _wait_commit(lab, follower, max(_commit_indexes(lab).values()))


def test_partial_cut_leaves_the_other_peers_reachable(healed: Lab) -> None:
    lab = healed
    lab.links.cut(partial("replica-1", ["replica-2"]))
    assert not lab.can_connect("replica-1", "replica-2", REFUSED)
    assert not lab.can_connect("replica-2", "replica-1", REFUSED)
    for peer in ("replica-3", "catalog", "frontend"):
        assert lab.can_connect(peer, "replica-1")
        assert lab.can_connect("replica-1", peer)
    assert lab.links.enforced() == (lab.links.current, lab.links.current)


def test_isolated_leader(healed: Lab) -> None:
    """Logs what orders get while the leader is cut from every other host."""
    lab = healed
    leader, _ = _leader_and_follower(lab)
    lab.links.cut(isolate(leader, lab.hosts))
    assert not lab.can_connect("frontend", leader, REFUSED)
    assert not lab.can_connect(leader, "catalog", REFUSED)
    assert not lab.can_connect(CLIENT, leader, REFUSED)

    cut_at = time.monotonic()
    replies = []
    while time.monotonic() - cut_at < 4.0:
        status, took = _order(lab)
        replies.append((round(time.monotonic() - cut_at, 2), status, round(took, 2)))
    # The root namespace is never cut: it still sees the isolated replica's own view.
    isolated = replica_health(lab.cluster)[int(leader.split("-")[1])]
    log_event(
        log,
        "leader isolated",
        leader=leader,
        replies=replies,  # (seconds since the cut, status, seconds the order took)
        isolated_view={key: isolated[key] for key in ("role", "term", "ready")},
        leader_now=current_leader(lab.cluster),
    )

    lab.links.heal()
    healed_at = time.monotonic()
    while (status := _order(lab)[0]) != 201:
        assert time.monotonic() - healed_at < 20, f"orders still get {status} after the heal"
    log_event(
        log,
        "leader healed",
        first_order_after=round(time.monotonic() - healed_at, 2),
        leader_now=current_leader(lab.cluster),
    )
    assert wait_converged(lab.cluster, timeout=20)


def test_moving_partitions_are_applied_step_by_step(healed: Lab) -> None:
    lab = healed
    replicas = [replica_name(rid) for rid in sorted(lab.cluster.replica_urls)]
    steps = []
    for partition in moving(replicas):
        lab.links.apply(partition)
        assert lab.links.enforced() == (partition, partition)
        alone = next(name for name in replicas if isolate(name, replicas) <= partition)
        others = [name for name in replicas if name != alone]
        assert not lab.can_connect(others[0], alone, REFUSED)
        assert lab.can_connect(others[0], others[1])
        status, took = _order(lab)
        steps.append((alone, current_leader(lab.cluster), status, round(took, 2)))
    # (the replica alone, the leader then, an order's status, the seconds it took)
    log_event(log, "moving partitions", steps=steps)
    lab.links.heal()
    assert lab.links.enforced() == (HEALED, HEALED)
    assert wait_converged(lab.cluster, timeout=20)
