"""The public API of the front-end against a real catalog process and a real Redis.

No order replica runs here: bad orders must be refused before any replica is asked, and a
valid order must fail cleanly with 503 once the order deadline passes.
"""

from __future__ import annotations

import json
import time

import pytest
import redis

from app.common import invalidation
from app.common.config import Settings
from app.frontend import create_app as create_frontend
from app.frontend.leader import DEADLINE_MESSAGE
from tests.conftest import free_port

TOY = "Tux"


@pytest.fixture(scope="module")
def cluster(module_cluster_factory):
    return module_cluster_factory(services=["redis", "catalog"])


def frontend_settings(cluster, **overrides) -> Settings:
    # Replicas on ports nothing listens on: orders that pass validation end in 503.
    values = {
        "catalog_url": cluster.catalog_url,
        "internal_token": cluster.internal_token,
        "redis_url": cluster.redis_url,
        "invalidation_channel": cluster.settings.invalidation_channel,
        "replicas": {1: f"http://127.0.0.1:{free_port()}", 2: f"http://127.0.0.1:{free_port()}"},
        "http_timeout": 0.5,
        "order_deadline": 0.3,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
def app(cluster):
    app = create_frontend(frontend_settings(cluster))
    assert app.extensions["frontend"].cache.wait_subscribed(5)
    yield app
    app.extensions["frontend"].close()


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def stock(client) -> dict[str, int]:
    reply = client.get("/products")
    assert reply.status_code == 200
    return {toy["name"]: toy["quantity"] for toy in reply.get_json()["data"]}


def assert_error(reply, status: int) -> None:
    assert reply.status_code == status, reply.data
    body = reply.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


# Products.


def test_get_product_has_exactly_the_public_fields(client):
    for _ in range(2):  # a miss, then a hit
        reply = client.get(f"/products/{TOY}")
        assert reply.status_code == 200
        assert reply.get_json() == {"data": {"name": TOY, "price": 15.99, "quantity": 100}}


def test_product_list_has_every_toy(client):
    reply = client.get("/products")
    assert reply.status_code == 200
    toys = reply.get_json()["data"]
    assert len(toys) >= 15
    for toy in toys:
        assert set(toy) == {"name", "price", "quantity"}
        assert isinstance(toy["quantity"], int) and not isinstance(toy["quantity"], bool)


def test_unknown_toy_is_404(client):
    assert_error(client.get("/products/Unicorn"), 404)


def test_published_invalidation_refreshes_the_product(app, client, cluster):
    """A plain message on the channel (an operator's redis-cli, another publisher): the
    front-end removes the entry itself."""
    client.get(f"/products/{TOY}")
    cache = app.extensions["frontend"].cache
    server = redis.Redis.from_url(cluster.redis_url)
    assert server.exists(cache.product_key(TOY))
    server.publish(
        cluster.settings.invalidation_channel,
        json.dumps({"product": TOY, "version": 9, "reason": "restock"}),
    )
    for _ in range(500):
        if not server.exists(cache.product_key(TOY)):
            break
        time.sleep(0.01)
    assert not server.exists(cache.product_key(TOY))


def test_the_catalogs_invalidation_script_needs_no_deletion_from_the_workers(app, client, cluster):
    client.get(f"/products/{TOY}")
    cache = app.extensions["frontend"].cache
    server = redis.Redis.from_url(cluster.redis_url)
    assert server.exists(cache.product_key(TOY))
    received = cache.recent[0]["received_at"] if cache.recent else 0.0
    deletes = _del_calls(server)
    # What the catalog's publisher runs for a change: delete the entry and lease, announce.
    server.register_script(invalidation.INVALIDATE)(
        keys=[cache.product_key(TOY), cache.lease_key(TOY)],
        args=[cluster.settings.invalidation_channel, invalidation.message(TOY, 9, "restock")],
    )
    assert not server.exists(cache.product_key(TOY))
    for _ in range(500):
        if cache.recent and cache.recent[0]["received_at"] > received:
            break
        time.sleep(0.01)
    assert cache.recent[0]["product"] == TOY and cache.recent[0]["version"] == 9
    assert _del_calls(server) == deletes + 1  # the script's own; the worker sent none
    assert client.get(f"/products/{TOY}").status_code == 200  # read again and refilled
    assert server.exists(cache.product_key(TOY))


def _del_calls(server: redis.Redis) -> int:
    return server.info("commandstats").get("cmdstat_del", {}).get("calls", 0)


@pytest.mark.parametrize(
    "path",
    [
        "/products/%FF",  # not UTF-8
        "/products/%C3%28",  # a broken two-byte sequence
        "/products/a%00b",  # a control character
        "/products/" + "x" * 65,  # over-long
        "/products/" + "x" * 5000,
    ],
)
def test_bad_product_names_are_400(client, path):
    assert_error(client.get(path), 400)


def test_catalog_down_is_503(cluster):
    settings = frontend_settings(
        cluster, catalog_url=f"http://127.0.0.1:{free_port()}", cache_enabled=False
    )
    app = create_frontend(settings)
    try:
        client = app.test_client()
        assert_error(client.get(f"/products/{TOY}"), 503)
        assert_error(client.get("/products"), 503)
    finally:
        app.extensions["frontend"].close()


def test_cache_disabled_serves_from_the_catalog_without_redis(cluster):
    app = create_frontend(frontend_settings(cluster, cache_enabled=False))
    try:
        client = app.test_client()
        server = redis.Redis.from_url(cluster.redis_url)
        server.delete(f"toystore:product:{TOY}")
        assert client.get(f"/products/{TOY}").get_json()["data"]["quantity"] == 100
        assert not server.exists(f"toystore:product:{TOY}")
        health = client.get("/health").get_json()["data"]
        assert health["cache_enabled"] is False and health["subscribed"] is False
    finally:
        app.extensions["frontend"].close()


def test_health(client):
    reply = client.get("/health")
    assert reply.status_code == 200
    assert reply.get_json() == {
        "data": {
            "redis": True,
            "cache_enabled": True,
            "subscribed": True,
            "leader_id": None,
            "term": None,
        }
    }


# Orders: every bad input is refused, nothing moves.

LONG = "x" * 65
BAD_ORDER_BODIES = {
    "malformed JSON": '{"name": "Tux", "quantity": 1',
    "not UTF-8": b'{"name": "T\xffx", "quantity": 1}',
    "empty body": "",
    "array": f'[{{"name": "{TOY}", "quantity": 1}}]',
    "string": '"Tux"',
    "number": "1",
    "null": "null",
    "missing name": '{"quantity": 1}',
    "name is a number": '{"name": 7, "quantity": 1}',
    "name is null": '{"name": null, "quantity": 1}',
    "name is a list": '{"name": ["Tux"], "quantity": 1}',
    "empty name": '{"name": "", "quantity": 1}',
    "over-long name": f'{{"name": "{LONG}", "quantity": 1}}',
    "control character in name": '{"name": "T\\u0000ux", "quantity": 1}',
    "lone surrogate in name": '{"name": "T\\ud800ux", "quantity": 1}',
    "missing quantity": '{"name": "Tux"}',
    "quantity string": '{"name": "Tux", "quantity": "2"}',
    "quantity float": '{"name": "Tux", "quantity": 2.5}',
    "quantity integral float": '{"name": "Tux", "quantity": 2.0}',
    "quantity true": '{"name": "Tux", "quantity": true}',
    "quantity null": '{"name": "Tux", "quantity": null}',
    "quantity zero": '{"name": "Tux", "quantity": 0}',
    "quantity negative": '{"name": "Tux", "quantity": -1}',
    "quantity absurd": '{"name": "Tux", "quantity": 99999999999999999999999}',
    "quantity above the limit": '{"name": "Tux", "quantity": 1001}',
    "quantity infinite": '{"name": "Tux", "quantity": 1e400}',
    "quantity NaN": '{"name": "Tux", "quantity": NaN}',
    "unknown field": '{"name": "Tux", "quantity": 1, "coupon": "FREE"}',
}


@pytest.mark.parametrize("path", ["/orders", "/orders/"])
@pytest.mark.parametrize("body", BAD_ORDER_BODIES.values(), ids=BAD_ORDER_BODIES.keys())
def test_bad_order_bodies_are_400_and_buy_nothing(client, path, body):
    before = stock(client)
    reply = client.post(path, data=body, content_type="application/json")
    assert_error(reply, 400)
    assert stock(client) == before


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_wrong_content_type_is_415(client, content_type):
    before = stock(client)
    body = json.dumps({"name": TOY, "quantity": 1})
    assert_error(client.post("/orders", data=body, content_type=content_type), 415)
    assert stock(client) == before


def test_body_too_large_is_413(client):
    before = stock(client)
    body = json.dumps({"name": TOY, "quantity": 1, "pad": "x" * 10_000})
    assert_error(client.post("/orders", data=body, content_type="application/json"), 413)
    assert stock(client) == before


@pytest.mark.parametrize("key", ["", "has space", "semi;colon", "k" * 129, "ünïcode"])
def test_bad_idempotency_key_is_400(client, key):
    before = stock(client)
    reply = client.post(
        "/orders", json={"name": TOY, "quantity": 1}, headers={"Idempotency-Key": key}
    )
    assert_error(reply, 400)
    assert stock(client) == before


def test_order_without_a_reachable_replica_is_503_and_buys_nothing(client):
    before = stock(client)
    reply = client.post(
        "/orders", json={"name": TOY, "quantity": 1}, headers={"Idempotency-Key": "k-1"}
    )
    assert_error(reply, 503)
    assert reply.get_json()["error"]["message"] == DEADLINE_MESSAGE
    assert stock(client) == before
    assert_error(client.get("/orders/0"), 503)


@pytest.mark.parametrize(
    "number", ["-1", "abc", "1.5", "1e3", "0x10", "+1", " 1", "99999999999999999999999", "%FF"]
)
@pytest.mark.parametrize("slash", ["", "/"])
def test_bad_order_numbers_are_400(client, number, slash):
    assert_error(client.get(f"/orders/{number}{slash}"), 400)


# Routing.


@pytest.mark.parametrize("path", ["/", "/nope", "/products/Tux/extra", "/orders/1/2", "/order"])
def test_unknown_route_is_404(client, path):
    assert_error(client.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", f"/products/{TOY}"),
        ("POST", f"/products/{TOY}"),
        ("PUT", "/orders"),
        ("GET", "/orders"),
        ("DELETE", "/orders/1"),
        ("POST", "/health"),
    ],
)
def test_wrong_method_is_405(client, method, path):
    before = stock(client)
    reply = client.open(path, method=method, json={"name": TOY, "quantity": 1})
    assert_error(reply, 405)
    assert "Allow" in reply.headers
    assert stock(client) == before
