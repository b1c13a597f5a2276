"""Which request ids are taken as given, and that work handed to a ContextPool keeps one."""

from __future__ import annotations

import pytest

from app.common import request_ids
from app.common.pools import ContextPool


@pytest.mark.parametrize(
    "given", ["abc", "7f9c2a1e-order-1", "trace:01.02_03", "a" * request_ids.MAX_LENGTH]
)
def test_a_well_formed_id_is_taken(given):
    assert request_ids.accept(given) == given


@pytest.mark.parametrize(
    "given",
    [None, "", "a" * (request_ids.MAX_LENGTH + 1), "new\nline", "two words", 'quote"d', "é"],
)
def test_anything_else_is_replaced_by_a_new_id(given):
    made = request_ids.accept(given)
    assert made != given and len(made) == 32
    assert request_ids.accept(made) == made


def test_a_context_pool_runs_tasks_with_the_submitters_id():
    token = request_ids.begin("outer")
    try:
        with ContextPool(max_workers=2) as pool:
            assert list(pool.map(lambda _: request_ids.current(), range(4))) == ["outer"] * 4
    finally:
        request_ids.end(token)
    assert request_ids.current() is None
    with ContextPool(max_workers=1) as pool:
        assert pool.submit(request_ids.current).result() is None
