"""The toystore command's own options."""

from __future__ import annotations

from importlib import metadata

import pytest

from app.cli import main


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"toystore {metadata.version('toystore')}"
