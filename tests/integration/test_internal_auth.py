"""Every internal route of the catalog and the replicas refuses a missing or wrong credential
with 401 in the error shape and changes nothing; with the store's credential it is served.
The routes are read from the services' own blueprints, so a new route is covered at once."""

from __future__ import annotations

import re

import pytest
import requests
from flask import Flask

from app.catalog.routes import bp as catalog_routes
from app.common.web import PROBES
from app.orders.routes import bp as replica_routes

SAMPLE_ARGS = {"name": "Tux", "number": "0", "raw": "0"}
WRONG = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dXNlcjpwYXNz"}]


def _routes(blueprint) -> list[tuple[str, str]]:
    app = Flask(__name__)
    app.register_blueprint(blueprint)
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule in PROBES:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLE_ARGS[m.group(1)], rule.rule)
        found += [(method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def _state(stack) -> tuple:
    auth = stack.internal_headers
    ledger = requests.get(f"{stack.catalog_url}/ledger", headers=auth, timeout=5).json()
    replicas = [
        requests.get(f"{url}/health", timeout=5).json()["data"]
        for url in stack.replica_urls.values()
    ]
    marks = [(h["term"], h["commit_index"], h["last_index"], h["role"]) for h in replicas]
    return ledger, marks


CATALOG = _routes(catalog_routes)
REPLICA = _routes(replica_routes)


def test_the_routes_under_test_are_the_internal_ones():
    assert ("POST", "/purchases") in CATALOG and ("GET", "/ledger") in CATALOG
    assert ("POST", "/raft/vote") in REPLICA and ("POST", "/election") in REPLICA


@pytest.mark.parametrize(("service", "method", "path"), [
    *(("catalog", m, p) for m, p in CATALOG),
    *(("replica", m, p) for m, p in REPLICA),
])  # fmt: skip
def test_internal_route_without_the_credential_is_refused_and_changes_nothing(
    stack, service, method, path
):
    base = stack.catalog_url if service == "catalog" else stack.replica_urls[2]
    # A body that would be valid, so that only the credential stands in the way.
    body = {"term": 10**6, "key": "attack", "name": "Tux", "quantity": 5, "keys": ["attack"]}
    before = _state(stack)
    for headers in WRONG:
        reply = requests.request(method, base + path, json=body, headers=headers, timeout=5)
        assert reply.status_code == 401, (headers, reply.text)
        assert reply.json()["error"]["code"] == 401
        assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert _state(stack) == before


def test_unknown_paths_need_the_credential_too_and_probes_do_not(stack):
    assert requests.get(f"{stack.catalog_url}/no/such", timeout=5).status_code == 401
    for url in (stack.catalog_url, *stack.replica_urls.values()):
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
        assert requests.get(f"{url}/ready", timeout=10).status_code in (200, 503)


def test_with_the_credential_internal_routes_are_served(stack):
    auth = stack.internal_headers
    assert requests.get(f"{stack.catalog_url}/ledger", headers=auth, timeout=5).status_code == 200
    products = requests.get(f"{stack.catalog_url}/products/Tux", headers=auth, timeout=5)
    assert products.status_code == 200 and products.json()["data"]["name"] == "Tux"
    status = requests.get(f"{stack.replica_urls[1]}/raft/status", headers=auth, timeout=5)
    assert status.status_code == 200


def test_the_public_api_needs_no_credential(stack):
    assert requests.get(f"{stack.frontend_url}/products/Tux", timeout=5).status_code == 200
    order = requests.post(f"{stack.frontend_url}/orders", json={"name": "Fox", "quantity": 1})
    assert order.status_code == 201
