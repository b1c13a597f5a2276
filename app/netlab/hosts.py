"""The lab's hosts: one Linux network namespace per host, each on a bridge by a veth pair.

::

    root namespace (the observer)  tsl-br 10.77.0.1/24
          │ tsl-v0     │ tsl-v1        ...
     eth0 10.77.0.10  eth0 10.77.0.11  ...
     ns tsl-redis     ns tsl-catalog   ...

Every namespace, link and nftables table the lab makes is named with ``PREFIX``, so
``cleanup()`` finds them all, also those of a run that was killed before it could clean up.
The addresses are private and exist only on the bridge: a host has no route but the lab's
subnet, and the root namespace reaches the hosts (health checks, a person's browser) through
the bridge's own address. The lab needs root and iproute2; ``links`` needs nftables.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PREFIX = "tsl-"
SUBNET = ipaddress.ip_network("10.77.0.0/24")
BRIDGE = f"{PREFIX}br"
BRIDGE_ADDRESS = str(SUBNET[1])
FIRST_HOST = 10  # hosts get SUBNET[10], SUBNET[11], ... in the order they are planned
HOST_IFACE = "eth0"  # the host's end of its veth pair, inside its namespace
TOOLS = ("ip", "ss", "nft")


class LabError(RuntimeError):
    """The lab cannot be built or changed on this machine."""


@dataclass(frozen=True)
class Host:
    name: str
    index: int

    @property
    def address(self) -> str:
        return str(SUBNET[FIRST_HOST + self.index])

    @property
    def netns(self) -> str:
        return f"{PREFIX}{self.name}"

    @property
    def veth(self) -> str:
        """The root namespace's end of the host's veth pair (at most 15 characters)."""
        return f"{PREFIX}v{self.index}"

    def argv(self, command: Sequence[str]) -> list[str]:
        """``command`` run inside this host."""
        return ["ip", "netns", "exec", self.netns, *command]


def plan_hosts(names: Iterable[str]) -> dict[str, Host]:
    """Hosts for these names, each with its own address, in the order given."""
    hosts = {name: Host(name, index) for index, name in enumerate(dict.fromkeys(names))}
    room = SUBNET.num_addresses - FIRST_HOST - 1  # the broadcast address stays free
    if len(hosts) > room:
        raise LabError(f"{len(hosts)} hosts do not fit in {SUBNET} (at most {room})")
    return hosts


def missing_requirements() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the network lab needs root (network namespaces, veth pairs, nftables)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the network lab needs {', '.join(missing)} (apt-get install nftables iproute2)"
    return None


def run(argv: Sequence[str], stdin: str | None = None) -> str:
    """Run one iproute2 or nft command; its output, or LabError with what it said."""
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} not found (apt-get install nftables iproute2)") from None
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def build(hosts: Iterable[Host]) -> None:
    """Make the bridge and every host. The caller cleans up if this fails half-way."""
    prefix = SUBNET.prefixlen
    run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    run(["ip", "addr", "add", f"{BRIDGE_ADDRESS}/{prefix}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    for host in hosts:
        run(["ip", "netns", "add", host.netns])
        peer = ["peer", "name", HOST_IFACE, "netns", host.netns]
        run(["ip", "link", "add", host.veth, "type", "veth", *peer])
        run(["ip", "link", "set", host.veth, "master", BRIDGE, "up"])
        inside = ["ip", "-n", host.netns]
        run([*inside, "addr", "add", f"{host.address}/{prefix}", "dev", HOST_IFACE])
        run([*inside, "link", "set", HOST_IFACE, "up"])
        run([*inside, "link", "set", "lo", "up"])


def leftovers() -> list[str]:
    """Every namespace and link of a lab on this machine (``netns:NAME``, ``link:NAME``)."""
    names = [f"netns:{name}" for name in _lab_namespaces()]
    return names + [f"link:{name}" for name in _lab_links()]


def cleanup() -> list[str]:
    """Remove everything any lab made on this machine; return what was removed.

    Processes still running in a lab namespace are SIGKILLed first (a namespace lives on as
    long as a process is in it). Deleting a namespace deletes its nftables tables and its
    end of the veth pair; the links that remain in the root namespace go after.
    """
    removed = leftovers()
    for netns in _lab_namespaces():
        for pid in run(["ip", "netns", "pids", netns]).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        run(["ip", "netns", "delete", netns])
    for link in _lab_links():
        # Deleting one end of a veth pair deletes the other: a link may be gone already.
        with contextlib.suppress(LabError):
            run(["ip", "link", "delete", link])
    return removed


def _lab_namespaces() -> list[str]:
    # `ip netns list` prints "NAME" or "NAME (id: N)".
    names = (line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line)
    return [name for name in names if name.startswith(PREFIX)]


def _lab_links() -> list[str]:
    # `ip -o link` prints "N: NAME: <...>" or "N: NAME@PEER: <...>".
    names = (
        line.split(":")[1].strip().split("@")[0] for line in run(["ip", "-o", "link"]).splitlines()
    )
    return [name for name in names if name.startswith(PREFIX)]
