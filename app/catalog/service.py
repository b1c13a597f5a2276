"""What one catalog process owns: its settings, store and background threads."""

from __future__ import annotations

from dataclasses import dataclass

from app.catalog.publisher import InvalidationPublisher
from app.catalog.restock import Restocker
from app.catalog.store import CatalogStore
from app.common.config import Settings


@dataclass
class CatalogService:
    settings: Settings
    store: CatalogStore
    publisher: InvalidationPublisher
    restocker: Restocker

    def close(self) -> None:
        """Stop the threads, then close the database (tests; a server just exits)."""
        self.restocker.stop()
        self.publisher.stop()
        self.store.close()
