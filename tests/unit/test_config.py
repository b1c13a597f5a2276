"""Settings: ORDER_REPLICAS with any number of replicas, and every bad setting refused at once."""

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


def test_every_bad_setting_is_named_at_once() -> None:
    bad = {
        "LOG_LEVEL": "bogus",
        "CATALOG_PORT": "70000",
        "FRONTEND_WORKERS": "many",
        "CACHE_ENABLED": "perhaps",
        "REDIS_TIMEOUT": "-1",
        "ORDER_WRITE_QUORUM": "all",
    }
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**bad, "RESTOCK_AMOUNT": "5"})
    problems = refused.value.problems
    assert len(problems) == len(bad)
    for name, value in bad.items():
        assert any(name in problem and value in problem for problem in problems), name
    assert str(refused.value).splitlines() == list(problems)


@pytest.mark.parametrize("name", ["FRONTEND_PORT", "CATALOG_PORT", "REDIS_PORT"])
@pytest.mark.parametrize("value", ["0", "65536"])
def test_ports_are_from_1_to_65535(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
    assert getattr(Settings.from_env({name: "65535"}), name.lower()) == 65535


@pytest.mark.parametrize("url", ["http://a", "http://a:0", "http://a:70000", "http://a:x"])
def test_every_replica_url_needs_a_port(url: str) -> None:
    with pytest.raises(ConfigError, match="port"):
        Settings.from_env({"ORDER_REPLICAS": f"1={url}"})


def test_choices_are_matched_in_any_case() -> None:
    settings = Settings.from_env(
        {"LOG_LEVEL": "debug", "SQLITE_SYNCHRONOUS": "normal", "ORDER_WRITE_QUORUM": "MAJORITY"}
    )
    assert (settings.log_level, settings.sqlite_synchronous, settings.write_quorum) == (
        "DEBUG",
        "NORMAL",
        "majority",
    )
