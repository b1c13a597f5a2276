"""HTTP transport from a replica to the catalog: the purchase saga's messages to and from
JSON (the catalog's side is ``app/catalog/routes.py``; docs/design.md, "Catalog").

Every call has the client's timeout; a missing answer surfaces as ``ServiceUnavailable``
except for a purchase, whose every outcome is a ``saga`` event.
"""

from __future__ import annotations

from app.common.http import ServiceClient, ServiceUnavailable
from app.orders.saga import Attempt, Bought, BuyFailed, BuyRefused, Event, Order

REFUSALS = (400, 404, 409, 410, 422)  # the catalog's definite "no" to a purchase
SETTLE_CHUNK = 5000


class CatalogLink:
    def __init__(self, url: str, timeout: float, token: str) -> None:
        self.client = ServiceClient(url, timeout, token)

    def _data(self, path: str, body: dict) -> dict:
        reply = self.client.post(path, json=body)
        if reply.status != 200 or not isinstance(reply.data, dict):
            raise ServiceUnavailable(
                self.client.base_url + path,
                f"status {reply.status}: {reply.error_message}",
                maybe_delivered=True,
            )
        return reply.data

    def buy(self, order: Order, attempt: Attempt) -> Event:
        body = {
            "key": order.key,
            "name": order.name,
            "quantity": order.quantity,
            "term": attempt.term,
            "attempt": attempt.seq,
        }
        try:
            reply = self.client.post("/purchases", json=body)
        except ServiceUnavailable as exc:
            return BuyFailed(exc.maybe_delivered)
        if reply.status == 200 and isinstance(reply.data, dict):
            version = reply.data.get("version")
            return Bought(version if isinstance(version, int) else None)
        if reply.status in REFUSALS:
            return BuyRefused(reply.status, reply.error_message)
        return BuyFailed(maybe_delivered=True)

    def undo(self, attempt: Attempt) -> bool:
        """Whether stock went back; either way the catalog has the undo."""
        body = {"key": attempt.key, "term": attempt.term, "attempt": attempt.seq}
        return bool(self._data("/purchases/undo", body)["undone"])

    def reconcile(self, term: int) -> list[Attempt]:
        """Raise the fence to ``term``; the unsettled purchases of lower terms."""
        data = self._data("/purchases/reconcile", {"term": term})
        return [Attempt(p["term"], p["attempt"], p["key"]) for p in data["pending"]]

    def settle(self, keys: list[str]) -> None:
        for i in range(0, len(keys), SETTLE_CHUNK):
            self._data("/purchases/settle", {"keys": keys[i : i + SETTLE_CHUNK]})
