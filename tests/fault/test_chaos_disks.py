"""The chaos run's disk faults on real tmpfs mounts: a disk filled to ENOSPC and freed, a
lost disk left blank, and every mount undone however the run ends."""

from __future__ import annotations

import errno
import os

import pytest

from app.chaos.disks import SmallDisks, fill, free, lose

pytestmark = [
    pytest.mark.fault,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]


def test_a_full_disk_refuses_writes_until_freed(tmp_path):
    disk = tmp_path / "replica-1"
    with SmallDisks() as disks:
        assert disks.mount([disk]) is None
        assert disk.is_mount()
        assert fill(disk) > 0
        with pytest.raises(OSError) as refused, (disk / "more").open("wb", buffering=0) as f:
            f.write(b"x" * 65536)
        assert refused.value.errno == errno.ENOSPC
        free(disk)
        (disk / "more").write_bytes(b"x" * 65536)
    assert not disk.is_mount()


def test_a_lost_disk_is_blank_and_stays_mounted(tmp_path):
    mounted, plain = tmp_path / "replica-1", tmp_path / "replica-2"
    plain.mkdir()
    with SmallDisks() as disks:
        assert disks.mount([mounted]) is None
        for directory in (mounted, plain):
            (directory / "orders.sqlite3").write_bytes(b"log")
            (directory / "sub").mkdir()
            (directory / "sub" / "file").write_bytes(b"x")
            lose(directory)
        assert mounted.is_mount() and list(mounted.iterdir()) == []
        assert not plain.exists()


def test_every_mount_is_undone_on_an_exception(tmp_path):
    disks_made = [tmp_path / f"replica-{i}" for i in (1, 2, 3)]
    with pytest.raises(KeyboardInterrupt), SmallDisks() as disks:
        assert disks.mount(disks_made) is None
        assert all(d.is_mount() for d in disks_made)
        raise KeyboardInterrupt
    assert not any(d.is_mount() for d in disks_made)


def test_a_failed_mount_undoes_the_others_and_says_why(tmp_path):
    good, bad = tmp_path / "replica-1", tmp_path / "replica-2"
    bad.write_text("a file, not a directory")
    with SmallDisks() as disks:
        reason = disks.mount([good, bad])
        assert reason is not None and str(bad) in reason
        assert not good.is_mount()
