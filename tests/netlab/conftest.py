"""The network lab's tests: real namespaces, real nftables, the real store (root only).

Where iproute2 or nftables is missing they are installed with apt-get (as root); where that
is impossible, or the machine allows no network namespaces, every test here is skipped with
the reason. Each test module first removes whatever an earlier, killed run left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from app.netlab.hosts import PREFIX, cleanup, missing_requirements
from app.netlab.lab import Lab
from tests.conftest import _clean_env
from tests.support import NO_RESTOCK

PACKAGES = ("nftables", "iproute2")


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env)


def _install_packages() -> str:
    """Install the lab's packages; what apt-get said if it could not."""
    if _apt_get("install", "-y", *PACKAGES).returncode == 0:
        return ""
    _apt_get("update")  # the package lists may be missing or stale
    done = _apt_get("install", "-y", *PACKAGES)
    if done.returncode == 0:
        return ""
    return (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]


def _namespaces_work() -> str:
    """Why this machine cannot make a network namespace, or empty when it can."""
    probe = f"{PREFIX}probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return made.stderr.strip()
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return ""


@pytest.fixture(scope="session", autouse=True)
def lab_requirements() -> None:
    problem = missing_requirements()
    if problem and os.geteuid() == 0 and shutil.which("apt-get"):
        said = _install_packages()
        problem = missing_requirements()
        if problem and said:
            problem = f"{problem}; apt-get install failed: {said}"
    if problem:
        pytest.skip(problem)
    why = _namespaces_work()
    if why:
        pytest.skip(f"network namespaces do not work here: {why}")


@pytest.fixture(scope="module", autouse=True)
def no_lab_leftovers(lab_requirements: None) -> None:
    """A test run killed earlier may have left a lab behind; a new one could not be built."""
    cleanup()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The whole store in the lab, three replicas, no restocks during the tests, and orders
    given up after 3 s (instead of 8) where no leader can commit them."""
    overrides = {**NO_RESTOCK, "ORDER_DEADLINE": "3"}
    with Lab.create(
        tmp_path_factory.mktemp("netlab"), env=_clean_env(), overrides=overrides, replicas=3
    ) as running:
        yield running


@pytest.fixture
def healed(lab: Lab) -> Iterator[Lab]:
    """The module's lab with no cut in force, before and after the test."""
    lab.links.heal()
    yield lab
    lab.links.heal()
