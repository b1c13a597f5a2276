"""The network lab's pure parts: partitions, the nft changes that apply them, the hosts' plan
and each service's command line and environment. Nothing is built; no root needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.cli import serve_argv
from app.cluster import service_kind
from app.common.config import Settings
from app.netlab.hosts import BRIDGE_ADDRESS, PREFIX, SUBNET, LabError, plan_hosts
from app.netlab.lab import CLIENT, Lab
from app.netlab.links import (
    CUT_FROM,
    CUT_TO,
    HEALED,
    TABLE,
    Cut,
    hosts_of,
    isolate,
    moving,
    nft_changes,
    one_way,
    partial,
    sides,
    symmetric,
)
from tests.conftest import _clean_env

REPLICAS = ["replica-1", "replica-2", "replica-3"]
HOSTS = ["redis", "catalog", *REPLICAS, "frontend", CLIENT]


def test_one_way_and_symmetric_cuts():
    assert one_way("a", "b") == {Cut("a", "b")}
    assert symmetric("a", "b") == {Cut("a", "b"), Cut("b", "a")}
    with pytest.raises(ValueError, match="itself"):
        one_way("a", "a")


def test_partial_cuts_a_node_from_the_named_peers_only():
    cuts = partial("replica-1", ["replica-2", "frontend"])
    assert cuts == symmetric("replica-1", "replica-2") | symmetric("replica-1", "frontend")
    assert "replica-3" not in hosts_of(cuts)


def test_isolation_cuts_a_node_from_every_other_host():
    cuts = isolate("replica-3", HOSTS)
    assert len(cuts) == 2 * (len(HOSTS) - 1)
    assert all("replica-3" in (cut.src, cut.dst) for cut in cuts)
    assert hosts_of(cuts) == set(HOSTS)


def test_sides_cut_every_pair_across_and_none_within():
    cuts = sides(["replica-1"], ["replica-2", "replica-3"])
    assert cuts == partial("replica-1", ["replica-2", "replica-3"])
    three = sides(["a"], ["b"], ["c", "d"])
    assert Cut("c", "d") not in three
    assert {Cut("a", "b"), Cut("b", "c"), Cut("d", "a")} <= three


def test_moving_partitions_move_the_minority_round_the_nodes():
    steps = list(moving(REPLICAS))
    assert steps == [
        sides(["replica-1"], ["replica-2", "replica-3"]),
        sides(["replica-2"], ["replica-1", "replica-3"]),
        sides(["replica-3"], ["replica-1", "replica-2"]),
    ]
    five = [f"r{i}" for i in range(1, 6)]
    first, second, *_, last = list(moving(five))
    assert first == sides(["r1", "r2"], ["r3", "r4", "r5"])
    assert second == sides(["r2", "r3"], ["r1", "r4", "r5"])
    assert last == sides(["r5", "r1"], ["r2", "r3", "r4"])
    with pytest.raises(ValueError, match="empty"):
        list(moving(["a"]))


def test_applying_changes_only_what_differs():
    hosts = plan_hosts(HOSTS)
    address = {name: host.address for name, host in hosts.items()}
    current = symmetric("replica-1", "replica-2")
    wanted = one_way("replica-1", "replica-2") | one_way("replica-3", "frontend")

    changes = nft_changes(current, wanted, hosts)

    a1, a3 = address["replica-1"], address["replica-3"]
    assert changes == {
        # replica-2 -> replica-1 healed, on both ends.
        "replica-2": [f"delete element inet {TABLE} {CUT_TO} {{ {a1} }}"],
        "replica-1": [f"delete element inet {TABLE} {CUT_FROM} {{ {address['replica-2']} }}"],
        # replica-3 -> frontend cut, on both ends; replica-1 -> replica-2 stays untouched.
        "replica-3": [f"add element inet {TABLE} {CUT_TO} {{ {address['frontend']} }}"],
        "frontend": [f"add element inet {TABLE} {CUT_FROM} {{ {a3} }}"],
    }
    assert nft_changes(wanted, wanted, hosts) == {}
    assert set(nft_changes(wanted, HEALED, hosts)) == {
        "replica-1",
        "replica-2",
        "replica-3",
        "frontend",
    }


def test_hosts_get_distinct_addresses_in_the_lab_subnet_and_short_names():
    hosts = plan_hosts(HOSTS)
    addresses = [host.address for host in hosts.values()]
    assert len(set(addresses)) == len(HOSTS)
    assert BRIDGE_ADDRESS not in addresses
    for host in hosts.values():
        assert host.address in {str(a) for a in SUBNET.hosts()}
        assert host.netns == f"{PREFIX}{host.name}"
        assert host.veth.startswith(PREFIX) and len(host.veth) <= 15  # IFNAMSIZ - 1
    with pytest.raises(LabError, match="do not fit"):
        plan_hosts(f"replica-{i}" for i in range(300))


def test_each_service_is_served_on_its_own_host_with_the_others_lab_addresses(tmp_path: Path):
    lab = Lab.create(tmp_path, env=_clean_env(), overrides={"CACHE_ENABLED": "0"}, replicas=3)
    hosts = lab.hosts
    assert list(hosts) == HOSTS
    assert CLIENT not in lab.cluster.specs  # a host without a service
    replicas = ",".join(f"{i}=http://{hosts[f'replica-{i}'].address}:{8100 + i}" for i in (1, 2, 3))
    for name, spec in lab.cluster.specs.items():
        host = hosts[name]
        assert spec.argv[:4] == ["ip", "netns", "exec", host.netns]
        assert spec.netns == host.netns
        env = spec.env
        assert env["HOST"] == host.address
        assert env["ORDER_REPLICAS"] == replicas
        assert env["CATALOG_URL"] == f"http://{hosts['catalog'].address}:8001"
        assert env["REDIS_URL"] == f"redis://{hosts['redis'].address}:8379/0"
        assert env["CACHE_ENABLED"] == "0"
        # One credential and one Redis password for all, made and kept in the data directory.
        assert env["INTERNAL_TOKEN"] == lab.cluster.internal_token != ""
        assert env["REDIS_PASSWORD"] != ""
        assert env["REDIS_PASSWORD"] == lab.cluster.specs["catalog"].env["REDIS_PASSWORD"]
        if name == "redis":
            assert "--bind" in spec.argv and host.address in spec.argv
            assert "--aclfile" in spec.argv
            continue
        assert spec.argv[4:] == [
            str(Path(sys.executable).parent / "toystore"),
            "serve",
            service_kind(name),
        ]
        # What `toystore serve` will run there: Gunicorn bound to the host's own address.
        bind = serve_argv(service_kind(name), Settings.from_env(env))
        assert bind[bind.index("--bind") + 1] == f"{host.address}:{spec.port}"
    for i in (1, 2, 3):
        env = lab.cluster.specs[f"replica-{i}"].env
        assert env["REPLICA_ID"] == str(i)
        assert env["DATA_DIR"] == str(tmp_path / "data" / f"replica-{i}")
    assert lab.cluster.specs["catalog"].env["DATA_DIR"] == str(tmp_path / "data")
    assert lab.frontend_url == f"http://{hosts['frontend'].address}:8000"
    assert lab.cluster.replica_urls == {
        i: f"http://{hosts[f'replica-{i}'].address}:{8100 + i}" for i in (1, 2, 3)
    }
