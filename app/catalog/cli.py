"""``toystore catalog load FILE``: merge a catalog file into the catalog's database.

At its first start the catalog loads ``CATALOG_DATA`` (or the built-in toys) into an empty
database; later starts leave the database as it is (with a warning if ``CATALOG_DATA`` is set).
This command is the explicit way to add toys or change prices afterwards. It writes the
database of ``DATA_DIR`` directly (safe while the catalog runs: SQLite serialises the writers)
and publishes an invalidation for every toy it changed, so no front-end keeps an old price.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.catalog.catalog_data import load_toys
from app.catalog.publisher import InvalidationPublisher
from app.catalog.store import CATALOG_FILE, CatalogStore
from app.common.config import ConfigError, Settings

PUBLISH_TIMEOUT = 5.0


def cmd_load(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
        toys = load_toys(args.file, settings.max_name_length)
    except (ConfigError, ValueError) as exc:
        print(f"toystore: {exc}", file=sys.stderr)
        return 2
    publisher = InvalidationPublisher(
        settings.effective_redis_url,
        settings.invalidation_channel,
        settings.cache_prefix,
        settings.redis_timeout,
    )
    publisher.start()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = CatalogStore(
        settings.data_dir / CATALOG_FILE,
        synchronous=settings.sqlite_synchronous,
        on_change=publisher.submit,
    )
    try:
        added, repriced = store.load(toys)
        published = publisher.flush(PUBLISH_TIMEOUT)
    finally:
        store.close()
        publisher.stop()
    print(
        f"{store.path}: {len(added)} toys added, {len(repriced)} repriced, "
        f"{len(toys) - len(added) - len(repriced)} unchanged"
    )
    if not published:
        print(
            "toystore: Redis did not take the invalidations; front-ends drop their cache when "
            "their subscription comes back, or restart them to be sure",
            file=sys.stderr,
        )
        return 1
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    catalog = commands.add_parser("catalog", help="manage the catalog's toys")
    actions = catalog.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = actions.add_parser(
        "load",
        help="add the file's new toys and take its prices (stock is left as it is)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("file", type=Path, help="a JSON list of toys, as CATALOG_DATA takes")
    load.set_defaults(func=cmd_load)
