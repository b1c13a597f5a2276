"""What one front-end worker holds: its settings, catalog client, product cache and router."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from app.common.config import Settings
from app.common.errors import ApiError
from app.common.http import ServiceClient, ServiceUnavailable
from app.frontend.cache import ProductCache
from app.frontend.leader import OrderRouter

CATALOG_DOWN = "The catalog is unavailable right now; try again shortly."


@dataclass
class Frontend:
    settings: Settings
    catalog: ServiceClient
    cache: ProductCache
    orders: OrderRouter

    @classmethod
    def build(cls, settings: Settings) -> Frontend:
        cache = ProductCache(settings)
        return cls(
            settings=settings,
            catalog=ServiceClient(
                settings.catalog_url, settings.http_timeout, settings.require_internal_token()
            ),
            cache=cache,
            orders=OrderRouter(settings, cache),
        )

    def load_product(self, name: str) -> dict[str, Any] | None:
        """The catalog's record of ``name`` (with its version), or None for an unknown toy."""
        try:
            reply = self.catalog.get("/products/" + quote(name, safe=""))
        except ServiceUnavailable:
            raise ApiError(503, CATALOG_DOWN) from None
        if reply.status == 404:
            return None
        if reply.status != 200 or not isinstance(reply.data, dict):
            raise ApiError(503, CATALOG_DOWN)
        return reply.data

    def catalog_answers(self) -> bool:
        try:
            return self.catalog.get("/health").status == 200
        except ServiceUnavailable:
            return False

    def close(self) -> None:
        self.cache.close()
        self.orders.close()
        self.catalog.close()
