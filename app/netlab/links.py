"""Cutting and healing links between the lab's hosts with nftables, inside the hosts.

A partition is pure data: a frozenset of ``Cut(src, dst)``, each meaning "``src`` cannot reach
``dst``". The functions below describe the usual ones (symmetric, one-way, partial, isolation,
sides, moving partitions) without touching the network, so they are unit-tested alone.
``Links.apply(wanted)`` then diffs the wanted cuts against the ones in force and changes only
those, in the hosts' own nftables tables.

What a cut drops: every packet of a TCP connection (or other flow) that ``src`` opens to
``dst``, in both hosts (``src``'s output, ``dst``'s input), whether the connection was open
before the cut or not. Connections ``dst`` opens to ``src`` still work, replies included: a
one-way cut A -> B means A's calls to B time out while B's calls to A get answers. Each host
has one table::

    table inet tsl-cuts {
        set cut_to   { type ipv4_addr; }   # peers this host cannot reach
        set cut_from { type ipv4_addr; }   # peers that cannot reach this host
        chain output { type filter hook output priority filter;
                       ip daddr @cut_to ct direction original drop; }
        chain input  { type filter hook input priority filter;
                       ip saddr @cut_from ct direction original drop; }
    }

The root namespace (the bridge's address) is never cut: it is where an operator or a test
looks at every host from, whatever the partition.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from app.common.logs import log_event
from app.netlab.hosts import PREFIX, Host, run

log = logging.getLogger(__name__)

TABLE = f"{PREFIX}cuts"
CUT_TO = "cut_to"
CUT_FROM = "cut_from"

TABLE_RULES = f"""
table inet {TABLE} {{
    set {CUT_TO} {{ type ipv4_addr; }}
    set {CUT_FROM} {{ type ipv4_addr; }}
    chain output {{
        type filter hook output priority filter; policy accept;
        ip daddr @{CUT_TO} ct direction original drop
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        ip saddr @{CUT_FROM} ct direction original drop
    }}
}}
"""


@dataclass(frozen=True, order=True)
class Cut:
    """``src`` cannot reach ``dst`` (see the module's docstring for exactly what is dropped)."""

    src: str
    dst: str

    def __post_init__(self) -> None:
        if self.src == self.dst:
            raise ValueError(f"a host cannot be cut from itself ({self.src})")


Partition = frozenset[Cut]
HEALED: Partition = frozenset()


def one_way(src: str, dst: str) -> Partition:
    """``src`` cannot reach ``dst``; ``dst`` still reaches ``src``."""
    return frozenset({Cut(src, dst)})


def symmetric(a: str, b: str) -> Partition:
    """Neither of ``a`` and ``b`` reaches the other."""
    return one_way(a, b) | one_way(b, a)


def partial(node: str, peers: Iterable[str]) -> Partition:
    """``node`` cut both ways from ``peers`` only; it still reaches every other host."""
    return frozenset().union(*(symmetric(node, peer) for peer in peers))


def isolate(node: str, hosts: Iterable[str]) -> Partition:
    """``node`` cut both ways from every other one of ``hosts``."""
    return partial(node, (host for host in hosts if host != node))


def sides(*groups: Iterable[str]) -> Partition:
    """Hosts in different groups cut both ways; hosts in no group are left alone."""
    listed = [tuple(group) for group in groups]
    cuts: set[Cut] = set()
    for i, group in enumerate(listed):
        for other in listed[i + 1 :]:
            for a in group:
                cuts |= partial(a, other)
    return frozenset(cuts)


def moving(nodes: Sequence[str], minority: int | None = None) -> Iterator[Partition]:
    """Partitions in which the minority side moves around ``nodes``: for 3 nodes
    {1} | {2, 3}, then {2} | {1, 3}, then {3} | {1, 2}; for 5 (minority 2)
    {1, 2} | {3, 4, 5}, then {2, 3} | {1, 4, 5}, and so on, once round.
    ``minority`` defaults to the largest minority, (len(nodes) - 1) // 2."""
    size = (len(nodes) - 1) // 2 if minority is None else minority
    if not 0 < size < len(nodes):
        raise ValueError(f"a minority of {size} of {len(nodes)} nodes leaves a side empty")
    for start in range(len(nodes)):
        small = [nodes[(start + i) % len(nodes)] for i in range(size)]
        yield sides(small, [node for node in nodes if node not in small])


def hosts_of(partition: Partition) -> set[str]:
    return {name for cut in partition for name in (cut.src, cut.dst)}


def nft_changes(
    current: Partition, wanted: Partition, hosts: Mapping[str, Host]
) -> dict[str, list[str]]:
    """The nft commands, host by host, that turn the cuts in force into the wanted ones."""
    changes: dict[str, list[str]] = {}

    def element(verb: str, host: str, set_name: str, peer: str) -> None:
        address = hosts[peer].address
        changes.setdefault(host, []).append(
            f"{verb} element inet {TABLE} {set_name} {{ {address} }}"
        )

    for verb, cuts in (("delete", current - wanted), ("add", wanted - current)):
        for cut in sorted(cuts):
            element(verb, cut.src, CUT_TO, cut.dst)
            element(verb, cut.dst, CUT_FROM, cut.src)
    return changes


class Links:
    """The cuts in force between a set of hosts, and the nftables tables that enforce them."""

    def __init__(self, hosts: Mapping[str, Host]) -> None:
        self.hosts = dict(hosts)
        self.current: Partition = HEALED

    def install(self) -> None:
        """Give every host its (empty) table of cuts."""
        for host in self.hosts.values():
            run(host.argv(["nft", "-f", "-"]), stdin=TABLE_RULES)

    def apply(self, wanted: Partition) -> None:
        """Cut exactly ``wanted``: add the missing cuts, heal the others."""
        unknown = hosts_of(wanted) - set(self.hosts)
        if unknown:
            raise ValueError(f"unknown hosts {sorted(unknown)}; known: {sorted(self.hosts)}")
        # One nft transaction per host: each host switches from its old rules to its new ones
        # at once.
        for name, commands in nft_changes(self.current, wanted, self.hosts).items():
            run(self.hosts[name].argv(["nft", "-f", "-"]), stdin="\n".join(commands) + "\n")
        log_event(
            log,
            "links changed",
            cut=describe(wanted - self.current),
            healed=describe(self.current - wanted),
            in_force=len(wanted),
        )
        self.current = frozenset(wanted)

    def cut(self, partition: Partition) -> None:
        """Add these cuts to the ones in force."""
        self.apply(self.current | partition)

    def heal(self, partition: Partition | None = None) -> None:
        """Heal these cuts (default: every cut)."""
        self.apply(HEALED if partition is None else self.current - partition)

    def enforced(self) -> tuple[Partition, Partition]:
        """The cuts the hosts' tables hold right now, read back from nftables: as their
        sources' output rules see them, and as their destinations' input rules do."""
        by_address = {host.address: name for name, host in self.hosts.items()}
        outgoing, incoming = set(), set()
        for name, host in self.hosts.items():
            for peer in self._elements(host, CUT_TO):
                outgoing.add(Cut(name, by_address[peer]))
            for peer in self._elements(host, CUT_FROM):
                incoming.add(Cut(by_address[peer], name))
        return frozenset(outgoing), frozenset(incoming)

    @staticmethod
    def _elements(host: Host, set_name: str) -> list[str]:
        listing = json.loads(run(host.argv(["nft", "-j", "list", "set", "inet", TABLE, set_name])))
        return [
            address
            for item in listing["nftables"]
            for address in item.get("set", {}).get("elem", [])
        ]


def describe(cuts: Iterable[Cut]) -> list[str]:
    return [f"{cut.src}->{cut.dst}" for cut in sorted(cuts)]
