"""Whatever a lab made goes away: after a run killed with SIGKILL, and after Ctrl-C or SIGTERM
of `toystore netlab up`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from app.cluster import REDIS_PASSWORD_FILE, ROOT
from app.netlab.hosts import PREFIX, LabError, leftovers, run
from app.netlab.lab import CLIENT, Lab
from tests.conftest import _clean_env

pytestmark = pytest.mark.netlab

# A lab run that builds its hosts and tables, starts a process in one host and is then
# SIGKILLed: nothing of its own cleanup can run.
CRASHING_RUN = textwrap.dedent(
    """
    import os, signal, subprocess
    from app.netlab.hosts import build, plan_hosts
    from app.netlab.links import Links, one_way
    hosts = plan_hosts(["catalog", "frontend"])
    build(hosts.values())
    links = Links(hosts)
    links.install()
    links.apply(one_way("frontend", "catalog"))
    sleeper = subprocess.Popen(
        hosts["catalog"].argv(["sleep", "600"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    print(sleeper.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _nft_tables_in_root() -> str:
    return run(["nft", "list", "tables"])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_cleanup_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN], cwd=ROOT, capture_output=True, text=True
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    sleeper = int(crashed.stdout.split()[0])
    found = leftovers()
    assert {f"netns:{PREFIX}catalog", f"netns:{PREFIX}frontend", f"link:{PREFIX}br"} <= set(found)
    assert _alive(sleeper)

    # A new lab will not build over them...
    with pytest.raises(LabError, match="netlab cleanup"):
        Lab.create(tmp_path, env=_clean_env(), replicas=1).start()

    # ...until `toystore netlab cleanup` removes them, the process in a host included.
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "netlab", "cleanup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"removed netns:{PREFIX}catalog" in done.stdout
    assert leftovers() == []
    deadline = time.monotonic() + 5
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(sleeper)
    assert PREFIX not in _nft_tables_in_root()


def test_netlab_up_serves_then_removes_the_lab_on_sigterm(tmp_path: Path) -> None:
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "netlab",
            "up",
            "--run-dir",
            str(tmp_path),
            "--replicas",
            "1",
        ],
        cwd=ROOT,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        for line in up.stdout:
            lines.append(line)
            if line.startswith("front-end at "):
                break
        assert lines and lines[-1].startswith("front-end at "), "".join(lines)
        password = (tmp_path / "data" / REDIS_PASSWORD_FILE).read_text().strip()
        assert password not in "".join(lines)  # the secrets stay in the data directory
        url = lines[-1].split()[2].rstrip(",")
        # A person on this machine reaches the front-end through the bridge...
        assert requests.get(f"{url}/products/Tux", timeout=5).status_code == 200
        # ...and so do the shoppers on the client host.
        client = subprocess.run(
            ["ip", "netns", "exec", f"{PREFIX}{CLIENT}", "curl", "-sf", f"{url}/products/Tux"],
            capture_output=True,
            text=True,
        )
        assert client.returncode == 0 and '"Tux"' in client.stdout, client
        up.send_signal(signal.SIGTERM)  # as a process manager stops it; Ctrl-C is the same
        assert up.wait(30) == 0
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(5)
    assert leftovers() == []
