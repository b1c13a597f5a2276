"""``toystore client`` against a real stack: orders placed, read back, reported; exit codes."""

from __future__ import annotations

import pytest

from app.cli import main
from app.client.run import run_shoppers
from app.client.shopper import RecordedOrder
from app.observe import replica_orders, wait_converged
from tests.conftest import free_port


@pytest.fixture(scope="module")
def store(module_cluster_factory):
    return module_cluster_factory()


def test_client_orders_are_verified_and_reported(store, capsys) -> None:
    code = main(
        ["client", "--url", store.frontend_url, "--p", "0.8", "--iterations", "15",
         "--clients", "2", "--seed", "7"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "mismatches: 0; errors: 0" in out
    for request_type in ("query", "order", "order-check"):
        assert any(line.split()[:1] == [request_type] for line in out.splitlines()), out


def test_every_recorded_order_is_in_the_replicas(store) -> None:
    report = run_shoppers(
        store.frontend_url, clients=2, p=1.0, seed=3, keep_going=lambda s: s.iterations < 5
    )
    assert report.ok, report.format()
    assert len(report.orders) + report.rejected == 10
    assert report.latency.count("order-check") == len(report.orders)
    wait_converged(store)
    for rid, rows in replica_orders(store).items():
        committed = {RecordedOrder(number, name, quantity) for number, name, quantity, _ in rows}
        assert set(report.orders) <= committed, f"replica {rid} misses an order"


def test_client_exits_non_zero_when_the_store_does_not_answer(capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = main(["client", "--url", url, "--iterations", "3"])
    out = capsys.readouterr().out
    assert code == 1
    assert "errors: 1" in out and "Connection refused" in out
