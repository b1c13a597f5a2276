"""Argument types shared by the command line's subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def kind_list(known: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    """A parser of comma-separated fault kinds, each one of ``known`` (for ``--kinds``)."""

    def parse(text: str) -> tuple[str, ...]:
        kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
        unknown = [kind for kind in kinds if kind not in known]
        if unknown or not kinds:
            problem = f"unknown fault kinds {unknown}" if unknown else "no fault kind given"
            raise argparse.ArgumentTypeError(f"{problem}; choose from {', '.join(known)}")
        return kinds

    return parse
