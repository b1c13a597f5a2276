"""The latency sweep and the crash experiment with tiny parameters, writing to a temp dir."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from app.cli import main
from app.eval.crash import BEGIN, END, choose_victim, write_section
from app.observe import order_table_problems

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_eval_writes_csv_and_plots(tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    code = main(
        ["eval", "--requests", "30", "--p", "0", "0.5", "--clients", "3", "--out-dir", str(out)]
    )
    assert code == 0, capsys.readouterr()
    with (out / "latency.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    points = {(row["cache"], float(row["p"]), row["request_type"]) for row in rows}
    for cache in ("on", "off"):
        assert (cache, 0.0, "query") in points
        assert (cache, 0.5, "order") in points and (cache, 0.5, "order-check") in points
        assert (cache, 0.0, "order") not in points  # p = 0 never orders
    assert all(float(row["mean_ms"]) > 0 and row["errors"] == "0" for row in rows)
    for name in ("latency_cache_on.png", "latency_cache_off.png", "latency_compare.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC), name


@pytest.mark.fault
def test_crash_experiment_reports_into_its_section(tmp_path: Path, capsys) -> None:
    doc = tmp_path / "evaluation.md"
    doc.write_text(f"# Evaluation\n\nbefore\n\n{BEGIN}\nold report\n{END}\n\nafter\n")
    code = main(
        ["crash-experiment", "--rounds", "2", "--clients", "2", "--down", "0.5", "--settle", "1",
         "--seed", "1", "--replicas", "5", "--doc", str(doc)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    text = doc.read_text()
    assert "old report" not in text and text.count(BEGIN) == 1 and text.count(END) == 1
    assert text.startswith("# Evaluation\n\nbefore\n") and text.endswith("\n\nafter\n")
    assert "no client noticed" in text and "**identical**" in text
    assert "| 1 | replica 5 | yes |" in text  # the first round kills the first leader
    assert "replica 5: " in text and "replica 6" not in text


def test_first_of_every_three_rounds_kills_the_leader() -> None:
    rng = random.Random(0)
    victims = [choose_victim(rng, index, 2, [1, 2, 3]) for index in range(9)]
    assert victims[0::3] == [2, 2, 2]
    assert choose_victim(rng, 0, None, [1, 2, 3]) in (1, 2, 3)


def test_compare_replicas_names_every_difference() -> None:
    good = [(0, "Tux", 1, "a"), (1, "Fox", 2, "b")]
    assert order_table_problems({1: good, 2: list(good), 3: list(good)}) == []
    problems = order_table_problems(
        {1: good, 2: good[:1], 3: [(0, "Tux", 1, "a"), (2, "Fox", 2, "a")]}
    )
    assert problems == [
        "replica 2 differs from replica 1",
        "replica 3 differs from replica 1",
    ]
    assert order_table_problems({1: [(1, "Tux", 1, "a")]}) == [
        "order numbers are not contiguous from 0"
    ]


def test_write_section_appends_when_there_is_none(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("# Doc\n")
    write_section(doc, f"{BEGIN}\nreport\n{END}")
    assert doc.read_text() == f"# Doc\n\n{BEGIN}\nreport\n{END}\n"
