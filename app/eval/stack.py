"""A private store for one experiment: free ports, its own data directory and Redis."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from app.catalog.catalog_data import load_toys
from app.cluster import Cluster

# Stock per toy in an experiment's catalog: more than any run can buy, so no order is refused
# for lack of stock and no restock happens mid-run; either would change what is measured.
AMPLE_STOCK = 1_000_000


def write_ample_catalog(path: Path) -> Path:
    """The built-in toys, each with AMPLE_STOCK in stock, as a catalog file for CATALOG_DATA."""
    toys = [{**toy.as_dict(), "quantity": AMPLE_STOCK} for toy in load_toys()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(toys, indent=1) + "\n", encoding="utf-8")
    return path


def plan_stack(
    work_dir: Path,
    *,
    cache: bool = True,
    env: Mapping[str, str] | None = None,
    replicas: int | None = None,
) -> Cluster:
    """A whole stack under ``work_dir`` (data/, logs/), not started yet; ``replicas`` as in
    ``Cluster.create``.

    It always runs its own Redis (an exported REDIS_URL is ignored) so that nothing else
    shares the cache being measured.
    """
    catalog = write_ample_catalog(work_dir / "catalog.json")
    return Cluster.create(
        data_dir=work_dir / "data",
        log_dir=work_dir / "logs",
        free_ports=True,
        env=env,
        replicas=replicas,
        overrides={
            "CACHE_ENABLED": "1" if cache else "0",
            "CATALOG_DATA": str(catalog),
            "REDIS_URL": "",
        },
    )
