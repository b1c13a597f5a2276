"""Where the experiments write their results: under ``var/`` by default, so a run never
rewrites the committed docs; into ``docs/`` only when asked with ``--update-docs``.

Shared by ``toystore bench``, ``toystore eval`` and ``toystore crash-experiment``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
VAR = ROOT / "var"


def add_update_docs(parser: argparse.ArgumentParser, docs_place: str) -> None:
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help=f"write the results into {docs_place} (default: under var/, docs untouched)",
    )


def chosen(given: Path | None, update_docs: bool, in_docs: Path, in_var: Path) -> Path:
    """An explicit path wins; else the docs' place with --update-docs, else var/'s."""
    if given is not None:
        return given
    return in_docs if update_docs else in_var
