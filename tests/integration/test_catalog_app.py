"""The catalog Flask app on a real SQLite file, publishing to a real Redis."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from app.catalog import create_app
from app.catalog.catalog_data import write_catalog
from app.catalog.publisher import InvalidationPublisher
from app.common import invalidation
from app.common.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TOKEN = "catalog-test-token"


class InternalClient(FlaskClient):
    """A test client that calls as the store's own services do: with the credential."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"


def make_app(tmp_path: Path, redis_url: str, **env: str):
    settings = Settings.from_env(
        {
            "DATA_DIR": str(tmp_path / "data"),
            "REDIS_URL": redis_url,
            "RESTOCK_INTERVAL": "3600",
            "REDIS_TIMEOUT": "0.2",
            "INTERNAL_TOKEN": TOKEN,
            **env,
        }
    )
    app = create_app(settings)
    app.test_client_class = InternalClient
    return app


@pytest.fixture
def app(tmp_path, redis_url):
    app = make_app(tmp_path, redis_url)
    yield app
    app.extensions["catalog"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def subscriber(redis_url):
    pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(Settings().invalidation_channel)
    # Read the subscribe confirmation: after it, no published message can be missed.
    pubsub.get_message(timeout=2)
    yield pubsub
    pubsub.close()


def next_invalidation(pubsub, timeout: float = 3.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message and message["type"] == "message":
            invalidation = json.loads(message["data"])
            assert invalidation.pop("deleted") is True  # the keys went in the same script
            published_at = invalidation.pop("published_at")
            assert abs(time.time() - published_at) < timeout + 1  # wall clock, for the lag metric
            return invalidation
    raise AssertionError("no invalidation received")


def purchase(client, key="k1", name="Tux", quantity=2, term=1, attempt=0):
    body = {"key": key, "name": name, "quantity": quantity, "term": term, "attempt": attempt}
    return client.post("/purchases", json=body)


def assert_error(response, status: int) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    code, message = body["error"]["code"], body["error"]["message"]
    assert type(code) is int and code == status
    assert isinstance(message, str) and message


def snapshot(app, client) -> tuple:
    store = app.extensions["catalog"].store
    return (
        client.get("/products").get_json(),
        client.get("/ledger").get_json(),
        store.fence(),
    )


# Success shapes.


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"data": {"status": "ok", "products": 22}}


def test_products(client):
    products = client.get("/products").get_json()["data"]
    assert len(products) >= 15
    assert all(set(p) == {"name", "price", "quantity", "version"} for p in products)
    tux = client.get("/products/Tux").get_json()
    assert tux == {"data": {"name": "Tux", "price": 15.99, "quantity": 100, "version": 1}}
    etch = client.get("/products/Etch%20A%20Sketch").get_json()["data"]
    assert etch["name"] == "Etch A Sketch"


def test_purchase_and_idempotent_retry(client):
    first = purchase(client, quantity=3)
    assert first.status_code == 200
    assert first.get_json() == {
        "data": {"key": "k1", "name": "Tux", "quantity": 3, "remaining": 97, "version": 2}
    }
    again = purchase(client, quantity=3)
    assert again.get_json() == first.get_json()
    assert client.get("/products/Tux").get_json()["data"]["quantity"] == 97


def test_purchase_refusals(client):
    assert_error(purchase(client, name="Unicorn"), 404)
    assert_error(purchase(client, quantity=101), 400)
    assert purchase(client, key="k2").status_code == 200
    assert_error(purchase(client, key="k2", quantity=5), 422)
    assert client.post("/purchases/reconcile", json={"term": 5}).status_code == 200
    assert_error(purchase(client, key="k3", term=4), 409)
    assert client.get("/products/Tux").get_json()["data"]["quantity"] == 98


def test_undo_reconcile_settle(client):
    purchase(client, key="a", term=1)
    purchase(client, key="b", term=1)
    undo = client.post("/purchases/undo", json={"key": "a", "term": 1, "attempt": 0})
    assert undo.get_json() == {"data": {"key": "a", "undone": True}}
    unknown = client.post("/purchases/undo", json={"key": "zzz", "term": 1, "attempt": 0})
    assert unknown.get_json() == {"data": {"key": "zzz", "undone": False}}
    assert_error(purchase(client, key="zzz", term=1), 410)  # a late buy of an undone attempt
    reconcile = client.post("/purchases/reconcile", json={"term": 2})
    pending = [{"key": "b", "term": 1, "attempt": 0}]
    assert reconcile.get_json() == {"data": {"fence": 2, "pending": pending}}
    settle = client.post("/purchases/settle", json={"keys": ["b", "zzz"]})
    assert settle.get_json() == {"data": {"settled": 1}}
    assert client.post("/purchases/reconcile", json={"term": 3}).get_json()["data"] == {
        "fence": 3,
        "pending": [],
    }


def test_settle_accepts_many_keys_beyond_the_order_body_limit(client):
    keys = [f"order-{i:06d}-0123456789abcdef0123456789" for i in range(2000)]
    response = client.post("/purchases/settle", json={"keys": keys})
    assert response.status_code == 200
    assert response.get_json() == {"data": {"settled": 0}}


def test_ledger(client):
    purchase(client, quantity=10)
    ledger = {row["name"]: row for row in client.get("/ledger").get_json()["data"]}
    assert ledger["Tux"] == {
        "name": "Tux",
        "initial": 100,
        "restocked": 0,
        "held": 10,
        "settled": 0,
        "undone": 0,
        "quantity": 90,
        "held_keys": ["k1"],
        "sold": 10,
        "balanced": True,
    }
    assert all(row["balanced"] for row in ledger.values())


# Bad input: a 4xx in the error shape, and nothing changes.

GOOD = {"key": "k-bad", "name": "Tux", "quantity": 1, "term": 1, "attempt": 0}


def with_(**fields) -> dict:
    return {**GOOD, **fields}


def without(field: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != field}


JSON = "application/json"
BAD_REQUESTS = {
    "malformed json": ("POST", "/purchases", b'{"key": "k", "name": ', JSON, 400),
    "empty body": ("POST", "/purchases", b"", JSON, 400),
    "array body": ("POST", "/purchases", b"[1, 2]", JSON, 400),
    "string body": ("POST", "/purchases", b'"Tux"', JSON, 400),
    "null body": ("POST", "/purchases", b"null", JSON, 400),
    "missing name": ("POST", "/purchases", without("name"), JSON, 400),
    "name is a number": ("POST", "/purchases", with_(name=5), JSON, 400),
    "name is null": ("POST", "/purchases", with_(name=None), JSON, 400),
    "name is a list": ("POST", "/purchases", with_(name=["Tux"]), JSON, 400),
    "empty name": ("POST", "/purchases", with_(name=""), JSON, 400),
    "over-long name": ("POST", "/purchases", with_(name="T" * 65), JSON, 400),
    "control char name": ("POST", "/purchases", with_(name="Tux\n"), JSON, 400),
    "non-utf8 name": (
        "POST",
        "/purchases",
        b'{"key": "k", "name": "\xff\xfe", "quantity": 1, "term": 1, "attempt": 0}',
        JSON,
        400,
    ),
    "missing quantity": ("POST", "/purchases", without("quantity"), JSON, 400),
    "quantity string": ("POST", "/purchases", with_(quantity="2"), JSON, 400),
    "quantity float": ("POST", "/purchases", with_(quantity=2.5), JSON, 400),
    "quantity whole float": ("POST", "/purchases", with_(quantity=2.0), JSON, 400),
    "quantity bool": ("POST", "/purchases", with_(quantity=True), JSON, 400),
    "quantity zero": ("POST", "/purchases", with_(quantity=0), JSON, 400),
    "quantity negative": ("POST", "/purchases", with_(quantity=-1), JSON, 400),
    "quantity huge": ("POST", "/purchases", with_(quantity=10**30), JSON, 400),
    "quantity above max": ("POST", "/purchases", with_(quantity=1001), JSON, 400),
    "unknown field": ("POST", "/purchases", with_(colour="red"), JSON, 400),
    "missing key": ("POST", "/purchases", without("key"), JSON, 400),
    "key with space": ("POST", "/purchases", with_(key="a b"), JSON, 400),
    "key too long": ("POST", "/purchases", with_(key="k" * 129), JSON, 400),
    "key a number": ("POST", "/purchases", with_(key=7), JSON, 400),
    "missing term": ("POST", "/purchases", without("term"), JSON, 400),
    "term negative": ("POST", "/purchases", with_(term=-1), JSON, 400),
    "term string": ("POST", "/purchases", with_(term="1"), JSON, 400),
    "term bool": ("POST", "/purchases", with_(term=True), JSON, 400),
    "term huge": ("POST", "/purchases", with_(term=2**63), JSON, 400),
    "text/plain": ("POST", "/purchases", json.dumps(GOOD).encode(), "text/plain", 415),
    "no content type": ("POST", "/purchases", json.dumps(GOOD).encode(), None, 415),
    "form body": ("POST", "/purchases", b"name=Tux", "application/x-www-form-urlencoded", 415),
    "body too large": ("POST", "/purchases", with_(name="T" * 5000), JSON, 413),
    "unknown toy": ("POST", "/purchases", with_(name="Unicorn"), JSON, 404),
    "not enough stock": ("POST", "/purchases", with_(quantity=101), JSON, 400),
    "undo missing term": ("POST", "/purchases/undo", {"key": "k1", "attempt": 0}, JSON, 400),
    "undo missing attempt": ("POST", "/purchases/undo", {"key": "k1", "term": 1}, JSON, 400),
    "missing attempt": ("POST", "/purchases", without("attempt"), JSON, 400),
    "attempt negative": ("POST", "/purchases", with_(attempt=-1), JSON, 400),
    "undo bad key": ("POST", "/purchases/undo", {"key": "", "term": 1, "attempt": 0}, JSON, 400),
    "undo extra field": (
        "POST",
        "/purchases/undo",
        {"key": "k1", "term": 1, "attempt": 0, "name": "Tux"},
        JSON,
        400,
    ),
    "reconcile term string": ("POST", "/purchases/reconcile", {"term": "9"}, JSON, 400),
    "reconcile term float": ("POST", "/purchases/reconcile", {"term": 9.0}, JSON, 400),
    "reconcile empty": ("POST", "/purchases/reconcile", {}, JSON, 400),
    "settle keys not a list": ("POST", "/purchases/settle", {"keys": "k1"}, JSON, 400),
    "settle bad key": ("POST", "/purchases/settle", {"keys": ["k1", "a b"]}, JSON, 400),
    "settle key not a string": ("POST", "/purchases/settle", {"keys": [1]}, JSON, 400),
    "settle too many keys": (
        "POST",
        "/purchases/settle",
        {"keys": ["k"] * 10_001},
        JSON,
        400,
    ),
    "settle body too large": (
        "POST",
        "/purchases/settle",
        {"keys": ["k" * 128 + "~1234567890123456"] * 11_000},
        JSON,
        413,
    ),
    "product name over-long": ("GET", "/products/" + "T" * 65, None, None, 400),
    "product name non-utf8": ("GET", "/products/%FF%FE", None, None, 400),
    "product name control char": ("GET", "/products/Tux%00", None, None, 400),
    "unknown product": ("GET", "/products/Unicorn", None, None, 404),
    "unknown route": ("GET", "/orders", None, None, 404),
    "trailing junk route": ("GET", "/products/Tux/more", None, None, 404),
    "get purchases": ("GET", "/purchases", None, None, 405),
    "post products": ("POST", "/products", GOOD, JSON, 405),
    "delete product": ("DELETE", "/products/Tux", None, None, 405),
    "put ledger": ("PUT", "/ledger", None, None, 405),
}


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory):
    # One app for the many bad-input cases keeps them fast; invalidations play no part in
    # them, so this one publishes nowhere.
    # A Redis nobody listens on: publishing just retries in the background.
    app = make_app(tmp_path_factory.mktemp("bad-input"), f"redis://127.0.0.1:{free_port()}/0")
    client = app.test_client()
    assert purchase(client, key="k1").status_code == 200
    yield app
    app.extensions["catalog"].close()


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "status"),
    list(BAD_REQUESTS.values()),
    ids=list(BAD_REQUESTS),
)
def test_bad_input_is_refused_and_changes_nothing(
    shared_app, method, path, body, content_type, status
):
    client = shared_app.test_client()
    before = snapshot(shared_app, client)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.open(path, method=method, data=data, headers=headers)
    assert_error(response, status)
    assert snapshot(shared_app, client) == before
    # The service keeps serving, and the refused request recorded no purchase under its key.
    assert purchase(client, key="k-after", quantity=1).status_code == 200
    held = [key for row in client.get("/ledger").get_json()["data"] for key in row["held_keys"]]
    assert GOOD["key"] not in held


# Invalidations and restock.


def test_purchase_and_undo_publish_invalidations(client, subscriber):
    purchase(client, key="k1", name="Fox", quantity=1)
    assert next_invalidation(subscriber) == {"product": "Fox", "version": 2, "reason": "purchase"}
    client.post("/purchases/undo", json={"key": "k1", "term": 1, "attempt": 0})
    assert next_invalidation(subscriber) == {"product": "Fox", "version": 3, "reason": "undo"}


def test_the_catalog_deletes_the_cached_entry_and_lease_before_it_announces_the_change(
    client, subscriber, redis_url
):
    server = redis.Redis.from_url(redis_url)
    prefix = Settings().cache_prefix
    keys = [invalidation.product_key(prefix, "Kite"), invalidation.lease_key(prefix, "Kite")]
    for key in keys:
        server.set(key, "before the purchase")
    untouched = invalidation.product_key(prefix, "Tux")
    server.set(untouched, "another toy")
    purchase(client, key="k1", name="Kite", quantity=1)
    assert next_invalidation(subscriber)["product"] == "Kite"
    # One script deleted and announced: once the message is out, the keys are gone.
    assert server.exists(*keys) == 0
    assert server.get(untouched) == b"another toy"


def test_refused_and_repeated_purchases_publish_nothing(app, client, subscriber):
    purchase(client, key="k1", name="Fox", quantity=1)
    assert next_invalidation(subscriber)["version"] == 2
    purchase(client, key="k1", name="Fox", quantity=1)
    purchase(client, key="k2", name="Fox", quantity=500)
    assert app.extensions["catalog"].publisher.flush(2)
    assert subscriber.get_message(timeout=0.2) is None


def test_restock_refills_and_publishes(tmp_path, redis_url, subscriber):
    app = make_app(tmp_path, redis_url, RESTOCK_INTERVAL="0.3")
    try:
        client = app.test_client()
        purchase(client, name="Kite", quantity=100)
        assert next_invalidation(subscriber)["reason"] == "purchase"
        assert next_invalidation(subscriber) == {
            "product": "Kite",
            "version": 3,
            "reason": "restock",
        }
        assert client.get("/products/Kite").get_json()["data"]["quantity"] == 100
        kite = next(r for r in client.get("/ledger").get_json()["data"] if r["name"] == "Kite")
        assert (kite["restocked"], kite["sold"], kite["balanced"]) == (100, 100, True)
    finally:
        app.extensions["catalog"].close()


def test_purchases_do_not_wait_on_a_dead_redis(tmp_path):
    app = make_app(tmp_path, f"redis://127.0.0.1:{free_port()}/0", REDIS_TIMEOUT="2")
    try:
        client = app.test_client()
        started = time.monotonic()
        for i in range(20):
            assert purchase(client, key=f"k{i}", quantity=1).status_code == 200
        assert time.monotonic() - started < 1.0
        assert not app.extensions["catalog"].publisher.flush(0.2)
    finally:
        app.extensions["catalog"].close()


def test_publisher_retries_until_redis_comes_up(tmp_path):
    port = free_port()
    publisher = InvalidationPublisher(
        f"redis://127.0.0.1:{port}/0", "test:inv", "test", timeout=0.2, max_backoff=0.1
    )
    publisher.start()
    # Redis starts on a unix socket only, so the test can subscribe before the publisher can
    # reach it; CONFIG SET port then opens the TCP port the publisher keeps retrying.
    with tempfile.TemporaryDirectory() as sockdir:
        sock = f"{sockdir}/redis.sock"
        server = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", str(ROOT / "redis" / "redis.conf"),
             "--port", "0", "--unixsocket", sock, "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for version in (2, 3, 4):
                publisher.submit("Tux", version, "purchase")
            publisher.submit("Tux", 1, "purchase")  # an older version never replaces a newer
            admin = redis.Redis(unix_socket_path=sock)
            deadline = time.monotonic() + 5
            while True:
                try:
                    admin.ping()
                    break
                except (redis.ConnectionError, FileNotFoundError):
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            pubsub = admin.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe("test:inv")
            pubsub.get_message(timeout=1)
            assert not publisher.flush(0.3)
            admin.config_set("port", port)
            assert next_invalidation(pubsub) == {
                "product": "Tux",
                "version": 4,
                "reason": "purchase",
            }
            assert publisher.flush(2)
            assert pubsub.get_message(timeout=0.2) is None
            pubsub.close()
            admin.close()
        finally:
            publisher.stop()
            server.kill()
            server.wait()


def test_generated_catalog_loads_from_catalog_data(tmp_path, redis_url):
    path = tmp_path / "big.json"
    write_catalog(path, 10_000)
    app = make_app(tmp_path, redis_url, CATALOG_DATA=str(path), SQLITE_SYNCHRONOUS="NORMAL")
    try:
        client = app.test_client()
        assert client.get("/health").get_json()["data"]["products"] == 10_000
        assert len(client.get("/products").get_json()["data"]) == 10_000
        assert client.get("/products/Giraffe").get_json()["data"]["price"] == 75.99
    finally:
        app.extensions["catalog"].close()
