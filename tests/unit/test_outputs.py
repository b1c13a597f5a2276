"""Experiments write under var/ unless asked to update the committed docs."""

from __future__ import annotations

from pathlib import Path

from app.cli import build_parser
from app.eval.cli import _out_dir
from app.outputs import DOCS, VAR, chosen


def test_results_go_under_var_unless_docs_are_asked_for():
    assert chosen(None, False, DOCS / "x", VAR / "x") == VAR / "x"
    assert chosen(None, True, DOCS / "x", VAR / "x") == DOCS / "x"
    assert chosen(Path("mine"), True, DOCS / "x", VAR / "x") == Path("mine")


def test_eval_and_bench_default_to_var():
    parser = build_parser()
    assert _out_dir(parser.parse_args(["eval"])) == VAR / "eval"
    assert _out_dir(parser.parse_args(["eval", "--update-docs"])) == DOCS / "eval"
    bench = parser.parse_args(["bench"])
    assert bench.out is None and bench.update_docs is False
    crash = parser.parse_args(["crash-experiment"])
    assert crash.doc is None and crash.update_docs is False
