"""The network lab's tests: real namespaces, real nftables, the real store (root only).

Where iproute2 or nftables is missing they are installed with apt-get (as root); where that
is impossible, or the machine allows no network namespaces, every test here is skipped with
the reason. Each test module first removes whatever an earlier, killed run left behind.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from app.netlab.hosts import PREFIX, cleanup, missing_requirements
from app.netlab.lab import Lab
from tests.apt import can_install, install_packages
from tests.conftest import _clean_env
from tests.support import NO_RESTOCK

PACKAGES = ("nftables", "iproute2")


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
    if problem and can_install():
        said = install_packages(*PACKAGES)
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
