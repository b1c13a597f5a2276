"""Property-based fuzzing of a running front-end from the OpenAPI document of its public API.

Schemathesis turns each operation of the document into Hypothesis strategies: positive cases
(requests the document allows) and negative ones (requests it forbids). Every reply is checked
against the document: no 5xx, a documented status, a JSON content type, the documented headers
and body, and a 4xx for every request the document forbids. After every 4xx the store must be
exactly as it was before the request: every toy as the catalog holds it (its change counter
too) and the length of the order log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from app.cluster import Cluster
from app.frontend.routes import OPENAPI_DOCUMENT

# A reply as the document says: status, content type, headers and body.
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# And no 5xx; a request that the document forbids gets a 4xx.
CHECKS = [not_a_server_error, *CONFORMANCE, negative_data_rejection]
TIMEOUT = 10.0


def document() -> dict[str, Any]:
    """A fresh copy of the document the front-end serves, for a test to change at will."""
    return json.loads(OPENAPI_DOCUMENT)


def load(doc: dict[str, Any]) -> OpenApiSchema:
    return schemathesis.openapi.from_dict(doc)


def operation_labels(doc: dict[str, Any], inputs_only: bool = False) -> list[str]:
    """Each operation of ``doc`` as ``"METHOD /path"``; with ``inputs_only``, only those that
    take parameters or a body (the others have nothing a negative case could break)."""
    return [
        f"{method.upper()} {path}"
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if not inputs_only or {"parameters", "requestBody"} & operation.keys()
    ]


def operation(schema: OpenApiSchema, label: str) -> APIOperation:
    method, path = label.split(" ", 1)
    return schema[path][method]


@dataclass(frozen=True)
class StoreState:
    """What a refused request must leave as it was."""

    products: tuple[tuple[Any, ...], ...]  # (name, price, quantity, version) of every toy
    orders: int  # length of the longest replica log: the leader's

    @classmethod
    def read(cls, cluster: Cluster) -> StoreState:
        toys = _internal_get(cluster, f"{cluster.catalog_url}/products")
        logs = [
            _internal_get(cluster, f"{url}/raft/status") for url in cluster.replica_urls.values()
        ]
        return cls(
            products=tuple(
                sorted((t["name"], t["price"], t["quantity"], t["version"]) for t in toys)
            ),
            orders=max(log["last_index"] for log in logs) + 1,
        )

    def changes(self, later: StoreState) -> str:
        toys = sorted(set(self.products) ^ set(later.products))
        return f"orders {self.orders} -> {later.orders}, toys before and after: {toys}"


def _internal_get(cluster: Cluster, url: str) -> Any:
    reply = requests.get(url, headers=cluster.internal_headers, timeout=TIMEOUT)
    reply.raise_for_status()
    return reply.json()["data"]


class Fuzzer:
    """Sends cases to one running store and checks each reply (see the module's docstring)."""

    def __init__(self, schema: OpenApiSchema, cluster: Cluster) -> None:
        self.schema = schema
        self.cluster = cluster
        self.session = requests.Session()
        self.replies: list[int] = []  # the status of every reply, in order

    def operation(self, label: str) -> APIOperation:
        return operation(self.schema, label)

    def check(self, case: Case) -> Response:
        """Send ``case``; fail unless the reply conforms and a 4xx left the store alone.

        The reply's headers have lowercase names, each with the list of its values."""
        before = StoreState.read(self.cluster)
        response = case.call(
            base_url=self.cluster.frontend_url, session=self.session, timeout=TIMEOUT
        )
        self.replies.append(response.status_code)
        case.validate_response(response, checks=CHECKS)
        if 400 <= response.status_code < 500:
            after = StoreState.read(self.cluster)
            assert after == before, (
                f"{case.method} {case.formatted_path} got {response.status_code} "
                f"but changed the store: {before.changes(after)}"
            )
        return response

    def fuzz(self, label: str, mode: GenerationMode, examples: int) -> None:
        """Up to ``examples`` generated cases of one operation, the same ones every run."""

        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            # No shrinking: each try is a round trip to the store, and the failing case is
            # reported as it was sent.
            phases=[Phase.generate],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(case=self.operation(label).as_strategy(generation_mode=mode))
        def run(case: Case) -> None:
            self.check(case)

        run()
