"""The catalog's own Prometheus metrics (listed in docs/operations.md)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter

OnChange = Callable[[str, int, str], None]

STOCK_CHANGES = Counter(
    "toystore_catalog_stock_changes",
    "Committed stock changes of one toy, by reason: purchase, undo (a purchase put back) or"
    " restock.",
    ["reason"],
)
STOCKOUTS = Counter(
    "toystore_catalog_stockouts",
    "Purchases refused because fewer toys were in stock than ordered.",
)


def counted(on_change: OnChange) -> OnChange:
    """``on_change`` (the store's callback after each committed change), counting each."""

    def count_then(product: str, version: int, reason: str) -> None:
        STOCK_CHANGES.labels(reason).inc()
        on_change(product, version, reason)

    return count_then
