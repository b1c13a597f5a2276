"""The lock files pin, with hashes, every dependency pyproject.toml declares (`make lock`
regenerates them; a dependency added without it fails here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pinned(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    blocks = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)((?:\s*\\\n\s*--hash=sha256:\w+)+)", text, re.M)
    return {canonicalize_name(name): version for name, version, hashes in blocks if hashes}


def _declared(requirements: list[str]) -> set[str]:
    names = {canonicalize_name(Requirement(r).name) for r in requirements}
    return names - {"toystore"}


def test_runtime_lock_pins_every_runtime_dependency_with_hashes():
    missing = _declared(PROJECT["dependencies"]) - set(_pinned("runtime.lock"))
    assert not missing, f"not in requirements/runtime.lock (run make lock): {sorted(missing)}"


def test_dev_lock_pins_everything_the_tests_install():
    extras = PROJECT["optional-dependencies"]
    wanted = _declared(PROJECT["dependencies"] + [r for deps in extras.values() for r in deps])
    missing = wanted - set(_pinned("dev.lock"))
    assert not missing, f"not in requirements/dev.lock (run make lock): {sorted(missing)}"


def test_both_locks_agree_on_shared_versions():
    runtime, dev = _pinned("runtime.lock"), _pinned("dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime
