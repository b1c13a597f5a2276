"""The shopper's pure decisions and the latency summary, without any store."""

from __future__ import annotations

import random

import pytest

from app.client.shopper import Policy, RecordedOrder, expected_status, order_mismatch
from app.client.stats import LatencyRecorder, percentile


def test_policy_never_orders_out_of_stock_toys_nor_more_than_in_stock() -> None:
    rng = random.Random(1)
    always = Policy(1.0, max_quantity=3)
    assert always.order_quantity(rng, 0) == 0
    assert {always.order_quantity(rng, 2) for _ in range(200)} == {1, 2}
    assert all(Policy(0.0).order_quantity(rng, 100) == 0 for _ in range(200))


def test_policy_orders_with_probability_p_and_is_repeatable() -> None:
    policy = Policy(0.3)
    decisions = [policy.order_quantity(random.Random(5), 100) for _ in range(2)]
    assert decisions[0] == decisions[1]
    rng = random.Random(2)
    share = sum(policy.order_quantity(rng, 100) > 0 for _ in range(5000)) / 5000
    assert 0.27 < share < 0.33


def test_policy_rejects_a_probability_outside_0_1() -> None:
    with pytest.raises(ValueError):
        Policy(1.5)


def test_order_mismatch() -> None:
    recorded = RecordedOrder(4, "Tux", 2)
    assert order_mismatch(recorded, {"number": 4, "name": "Tux", "quantity": 2}) is None
    assert order_mismatch(recorded, {"number": 4, "name": "Tux", "quantity": 3})
    assert order_mismatch(recorded, {"number": 5, "name": "Tux", "quantity": 2})
    assert order_mismatch(recorded, None)


def test_only_a_refused_order_is_an_expected_failure() -> None:
    assert expected_status("order", 400)
    assert not expected_status("query", 400)
    assert not expected_status("order", 503)
    assert expected_status("order-check", 200)


def test_latency_summary() -> None:
    recorder = LatencyRecorder()
    for ms in range(1, 101):
        recorder.add("query", ms / 1000)
    recorder.add("order", 0.5)
    merged = LatencyRecorder.merged([recorder, recorder])
    query, order = merged.summaries()
    assert (query.request_type, query.count) == ("query", 200)
    assert query.p50_ms == pytest.approx(50) and query.p99_ms == pytest.approx(99)
    assert query.mean_ms == pytest.approx(50.5)
    assert order.count == 2
    assert percentile([1.0], 0.99) == 1.0
