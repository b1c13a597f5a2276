"""The latency sweep: 5 shoppers per point, p from 0 to 0.8, cache on and cache off.

Each cache setting gets a fresh stack of its own (CACHE_ENABLED applies to the whole stack);
both run side by side, idle but for the setting being measured. Every point sends the same
number of queries and orders, so the points are equally precise; the order checks come on top.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from app.client.run import RunReport, run_shoppers
from app.client.stats import REQUEST_TYPES
from app.eval.stack import plan_stack

log = logging.getLogger(__name__)

P_VALUES = (0.0, 0.2, 0.4, 0.6, 0.8)
CLIENTS = 5
# Requests per shopper before measuring: connections, worker imports and SQLite pages warm up.
WARMUP_REQUESTS = 20


@dataclass(frozen=True)
class Point:
    """One row of latency.csv: one request type at one p with the cache on or off."""

    cache: str  # "on" or "off"
    p: float
    request_type: str
    count: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    errors: int
    mismatches: int


def points_of(cache: bool, p: float, report: RunReport) -> list[Point]:
    return [
        Point(
            "on" if cache else "off",
            p,
            row.request_type,
            row.count,
            round(row.mean_ms, 3),
            round(row.p50_ms, 3),
            round(row.p99_ms, 3),
            len(report.errors),
            len(report.mismatches),
        )
        for row in report.latency.summaries()
    ]


def sweep(
    work_dir: Path,
    *,
    requests: int,
    p_values: Sequence[float] = P_VALUES,
    clients: int = CLIENTS,
    caches: Sequence[bool] = (True, False),
    seed: int | None = 0,
    env: Mapping[str, str] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[Point]:
    """Measure every (cache, p) point; ``requests`` queries and orders per point in all."""
    per_client = max(1, requests // clients)
    points: list[Point] = []
    with contextlib.ExitStack() as running:
        stacks = {}
        for cache in caches:
            name = f"cache-{'on' if cache else 'off'}"
            stacks[cache] = running.enter_context(plan_stack(work_dir / name, cache=cache, env=env))
            stacks[cache].start()
            run_shoppers(
                stacks[cache].frontend_url,
                clients=clients,
                p=0.5,
                keep_going=lambda shopper: shopper.requests < WARMUP_REQUESTS,
            )
        # Both stacks stay up and take turns at each p, so a burst of load from elsewhere on
        # the machine hits the cache-on and cache-off runs alike rather than one whole series.
        for p in p_values:
            for cache, cluster in stacks.items():
                report = run_shoppers(
                    cluster.frontend_url,
                    clients=clients,
                    p=p,
                    seed=seed,
                    keep_going=lambda shopper: shopper.requests < per_client,
                    on_step=on_step,
                )
                log.info("cache %s, p=%s:\n%s", "on" if cache else "off", p, report.format())
                points += points_of(cache, p, report)
    return sorted(points, key=lambda pt: (pt.cache != "on", pt.p))


def write_csv(points: Sequence[Point], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(Point)])
        writer.writeheader()
        writer.writerows(asdict(point) for point in points)


def read_csv(path: Path) -> list[Point]:
    """The points of a latency.csv written by ``write_csv``."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            Point(
                cache=row["cache"],
                p=float(row["p"]),
                request_type=row["request_type"],
                count=int(row["count"]),
                mean_ms=float(row["mean_ms"]),
                p50_ms=float(row["p50_ms"]),
                p99_ms=float(row["p99_ms"]),
                errors=int(row["errors"]),
                mismatches=int(row["mismatches"]),
            )
            for row in csv.DictReader(handle)
        ]


def _series(points: Sequence[Point], cache: str, request_type: str) -> tuple[list, list, list]:
    """p values, means and p99s of one request type, sorted by p."""
    rows = sorted(
        (pt for pt in points if pt.cache == cache and pt.request_type == request_type),
        key=lambda pt: pt.p,
    )
    return [pt.p for pt in rows], [pt.mean_ms for pt in rows], [pt.p99_ms for pt in rows]


COLORS = {"query": "tab:blue", "order": "tab:orange", "order-check": "tab:green"}


def plot(points: Sequence[Point], out_dir: Path) -> list[Path]:
    """latency_cache_on.png, latency_cache_off.png and latency_compare.png in ``out_dir``."""
    import matplotlib

    # No display: render straight to files, also on machines without a GUI toolkit.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for cache in ("on", "off"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for request_type in REQUEST_TYPES:
            ps, means, p99s = _series(points, cache, request_type)
            if not ps:
                continue
            color = COLORS[request_type]
            ax.plot(ps, means, "o-", color=color, label=f"{request_type} mean")
            ax.plot(ps, p99s, "x:", color=color, alpha=0.7, label=f"{request_type} p99")
        ax.set(
            title=f"Latency per request type, cache {cache} ({CLIENTS} clients)",
            xlabel="p (probability of ordering after a query)",
            ylabel="latency (ms)",
        )
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        # Below the axes, where it cannot hide the p99 lines.
        ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.15))
        path = out_dir / f"latency_cache_{cache}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    fig, axes = plt.subplots(1, len(REQUEST_TYPES), figsize=(12, 4), sharey=False)
    for ax, request_type in zip(axes, REQUEST_TYPES, strict=True):
        for cache, style in (("on", "o-"), ("off", "s--")):
            ps, means, _ = _series(points, cache, request_type)
            if ps:
                ax.plot(ps, means, style, color=COLORS[request_type], label=f"cache {cache}")
        ax.set(title=request_type, xlabel="p", ylabel="mean latency (ms)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Mean latency, cache on vs off")
    fig.tight_layout()
    path = out_dir / "latency_compare.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written
