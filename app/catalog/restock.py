"""Periodic restock: every interval, each toy at 0 goes back to the restock amount."""

from __future__ import annotations

import logging
import threading

from app.catalog.store import CatalogStore
from app.common.logs import log_event

log = logging.getLogger(__name__)

# A round that restocks thousands of toys logs the first few names and the count.
_LOGGED_NAMES = 20


class Restocker:
    def __init__(self, store: CatalogStore, interval: float, amount: int) -> None:
        self.store = store
        self.interval = interval
        self.amount = amount
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="restock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                changed = self.store.restock(self.amount)
            except Exception:  # a failed round (disk full, locked) must not end restocking
                log.exception("restock round failed")
                continue
            if changed:
                names = [name for name, _ in changed]
                log_event(
                    log,
                    "restocked",
                    count=len(names),
                    toys=names[:_LOGGED_NAMES],
                    amount=self.amount,
                )
