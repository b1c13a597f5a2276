"""The X-Product-Version header: reads and orders tell a client where they fall in a toy's
history of changes (the chaos checker's read-your-purchases check relies on it)."""

from __future__ import annotations

import requests

from tests.support import new_key, order

HEADER = "X-Product-Version"


def test_reads_and_orders_carry_the_toys_version(stack):
    url = stack.frontend_url
    before = requests.get(f"{url}/products/Marbles", timeout=5)
    assert set(before.json()["data"]) == {"name", "price", "quantity"}
    key = new_key()
    placed = order(requests, url, "Marbles", 1, key)
    assert placed.status_code == 201
    assert set(placed.json()["data"]) == {"order_number"}
    bought = int(placed.headers[HEADER])
    assert bought > int(before.headers[HEADER])
    after = requests.get(f"{url}/products/Marbles", timeout=5)
    assert int(after.headers[HEADER]) >= bought
    # A replay buys nothing: the order is already in the log, so no purchase version.
    replay = order(requests, url, "Marbles", 1, key)
    assert replay.json() == placed.json()
    assert HEADER not in replay.headers
