"""ORDER_REPLICAS: any number of replicas, with positive and unique ids."""

from __future__ import annotations

import pytest

from app.common.config import (
    DEFAULT_REPLICA_COUNT,
    REPLICA_BASE_PORT,
    ConfigError,
    Settings,
    local_replicas,
    parse_replicas,
)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7])
def test_any_number_of_replicas_with_a_majority_quorum(count: int) -> None:
    settings = Settings.from_env({"ORDER_REPLICAS": local_replicas(count)})
    assert sorted(settings.replicas) == list(range(1, count + 1))
    assert [settings.replica_port(rid) for rid in sorted(settings.replicas)] == [
        REPLICA_BASE_PORT + rid for rid in range(1, count + 1)
    ]
    assert settings.quorum_size == count // 2 + 1


def test_the_default_is_the_local_cluster() -> None:
    assert Settings.from_env({}).replicas == parse_replicas(local_replicas(DEFAULT_REPLICA_COUNT))
    assert Settings().replicas == Settings.from_env({}).replicas


def test_ids_need_not_be_contiguous() -> None:
    replicas = parse_replicas("7=http://a:1, 3=http://b:2/")
    assert replicas == {7: "http://a:1", 3: "http://b:2"}


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("0=http://a:1,1=http://b:2", "positive"),
        ("1=http://a:1,1=http://b:2", "twice"),
        ("-1=http://a:1", "ID=URL"),
        ("x=http://a:1", "ID=URL"),
        ("1=", "ID=URL"),
        (",", "no replica"),
    ],
)
def test_bad_order_replicas_are_refused(spec: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Settings.from_env({"ORDER_REPLICAS": spec})


def test_local_replicas_needs_one() -> None:
    with pytest.raises(ConfigError):
        local_replicas(0)
