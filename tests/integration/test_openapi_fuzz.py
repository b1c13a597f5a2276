"""The running store against the OpenAPI document of its public API (tests/fuzzing.py).

Every operation is fuzzed with the same derandomized examples on every run: no reply may be
a 5xx or stray from the document, and no 4xx may change the store. Restocks are off, so only
the fuzzed orders move stock. The document's wrong copies show that the checks do fail.
"""

from __future__ import annotations

import pytest
import requests
from schemathesis import GenerationMode
from schemathesis.errors import FailureGroup
from schemathesis.openapi.checks import JsonSchemaError, MissingHeaders, UndefinedStatusCode

from tests.fuzzing import CONFORMANCE, TIMEOUT, Fuzzer, document, load, operation, operation_labels
from tests.support import NO_RESTOCK, new_key, order

EXAMPLES = 25  # per operation and generation mode
DOC = document()


@pytest.fixture(scope="module")
def store(module_cluster_factory):
    # One front-end worker serves these one-at-a-time requests and spares the CPU.
    return module_cluster_factory(env={**NO_RESTOCK, "FRONTEND_WORKERS": "1"})


@pytest.fixture
def fuzzer(store) -> Fuzzer:
    return Fuzzer(load(document()), store)


def test_orders_reply_as_documented(fuzzer):
    """A new order, its replay, the key reused for another order and the order read back:
    each reply checked against the document like a fuzzed one."""
    place = fuzzer.operation("POST /orders")
    key = {"Idempotency-Key": new_key()}
    body = {"name": "Fox", "quantity": 1}
    created = fuzzer.check(place.Case(body=body, headers=key))
    assert created.status_code == 201, created.text
    number = created.json()["data"]["order_number"]
    assert created.headers["location"] == [f"/orders/{number}"]
    assert "idempotent-replayed" not in created.headers

    replayed = fuzzer.check(place.Case(body=body, headers=key))
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == created.json()
    assert replayed.headers["location"] == created.headers["location"]
    assert replayed.headers["idempotent-replayed"] == ["true"]

    reused = fuzzer.check(place.Case(body={**body, "quantity": 2}, headers=key))
    assert reused.status_code == 422, reused.text

    lookup = fuzzer.operation("GET /orders/{number}")
    found = fuzzer.check(lookup.Case(path_parameters={"number": number}))
    assert found.json()["data"] == {"number": number, **body}


def test_bodies_refused_before_reading_change_nothing(fuzzer, store):
    place = fuzzer.operation("POST /orders")
    too_large = {"name": "Fox", "quantity": 1, "padding": "x" * store.settings.max_body_bytes}
    assert fuzzer.check(place.Case(body=too_large)).status_code == 413
    not_json = place.Case(body="name=Fox&quantity=1", media_type="text/plain")
    assert fuzzer.check(not_json).status_code == 415


def test_requests_refused_before_the_route_reply_as_documented(fuzzer):
    lookup = fuzzer.operation("GET /products/{name}")
    long_line = lookup.Case(path_parameters={"name": "T" * 5000})
    assert fuzzer.check(long_line).status_code == 414
    big_header = lookup.Case(path_parameters={"name": "Tux"}, headers={"X-Big": "x" * 9000})
    assert fuzzer.check(big_header).status_code == 431


def test_unavailable_replies_as_documented(cluster_factory):
    """Without order replicas and catalog, each operation that needs them gets the documented
    503, with Retry-After."""
    down = cluster_factory(
        services=["redis", "catalog", "frontend"],
        env={**NO_RESTOCK, "FRONTEND_WORKERS": "1", "ORDER_DEADLINE": "0.5"},
    )
    down.kill("catalog")
    schema = load(document())
    requests_that_need_them = [
        ("GET /products/{name}", {"path_parameters": {"name": "Tux"}}),
        ("GET /products", {}),
        ("POST /orders", {"body": {"name": "Tux", "quantity": 1}}),
        ("GET /orders/{number}", {"path_parameters": {"number": 0}}),
        ("GET /ready", {}),
    ]
    for label, parts in requests_that_need_them:
        case = operation(schema, label).Case(**parts)
        response = case.call(base_url=down.frontend_url, timeout=TIMEOUT)
        case.validate_response(response, checks=CONFORMANCE)
        assert response.status_code == 503, (label, response.text)
        assert response.headers.get("retry-after"), label


@pytest.mark.parametrize("label", operation_labels(DOC))
def test_positive_cases_conform(fuzzer, label):
    fuzzer.fuzz(label, GenerationMode.POSITIVE, EXAMPLES)
    assert fuzzer.replies, "no case was sent"
    assert max(fuzzer.replies) < 500


@pytest.mark.parametrize("label", operation_labels(DOC, inputs_only=True))
def test_negative_cases_are_refused_and_change_nothing(fuzzer, label):
    fuzzer.fuzz(label, GenerationMode.NEGATIVE, EXAMPLES)
    assert fuzzer.replies, "no case was sent"
    assert all(400 <= status < 500 for status in fuzzer.replies), fuzzer.replies


def test_a_change_behind_a_4xx_is_caught(fuzzer, store):
    """As if a refused request had bought something: an order lands as its reply arrives."""

    def buy(response, **kwargs) -> None:
        assert order(requests, store.frontend_url, "Lego", 1).ok

    fuzzer.session.hooks["response"].append(buy)
    refused = fuzzer.operation("GET /products/{name}").Case(path_parameters={"name": "x" * 65})
    with pytest.raises(AssertionError, match="got 400 but changed the store: orders"):
        fuzzer.check(refused)


def _wrong_price_type(doc):
    doc["components"]["schemas"]["Product"]["properties"]["price"] = {"type": "string"}
    return "GET /products", JsonSchemaError


def _missing_not_found(doc):
    del doc["paths"]["/products/{name}"]["get"]["responses"]["404"]
    return "GET /products/{name}", UndefinedStatusCode


def _header_never_sent(doc):
    doc["paths"]["/products"]["get"]["responses"]["200"]["headers"] = {
        "X-Product-Version": {"required": True, "schema": {"type": "integer"}}
    }
    return "GET /products", MissingHeaders


@pytest.mark.parametrize("spoil", [_wrong_price_type, _missing_not_found, _header_never_sent])
def test_a_wrong_document_is_caught(store, spoil):
    doc = document()
    label, failure = spoil(doc)
    with pytest.raises(FailureGroup) as caught:
        Fuzzer(load(doc), store).fuzz(label, GenerationMode.POSITIVE, EXAMPLES)
    assert caught.group_contains(failure), caught.value
