"""REDIS_URL: the redis+sentinel:// form parsed, every malformed one refused at settings time
(without its secrets in the message), and credentials kept out of what is logged."""

from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool

from app import cli
from app.common.config import (
    REDIS_USER,
    ConfigError,
    SentinelURL,
    Settings,
    parse_sentinel_url,
    with_redis_credentials,
    without_credentials,
)
from app.common.redis_client import redis_client

THREE = "10.0.0.1:26379,10.0.0.2:26380,[::1]:26381"


def test_three_sentinels_a_service_and_a_database() -> None:
    assert parse_sentinel_url(f"redis+sentinel://{THREE}/cache/2") == SentinelURL(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380), ("::1", 26381)),
        service="cache",
        db=2,
    )


@pytest.mark.parametrize(
    "url",
    ["redis+sentinel://a:1/cache", "redis+sentinel://a:1/cache/", "redis+sentinel://a:1,/cache"],
)
def test_the_database_defaults_to_0_and_a_stray_separator_is_ignored(url: str) -> None:
    parsed = parse_sentinel_url(url)
    assert (parsed.sentinels, parsed.service, parsed.db) == ((("a", 1),), "cache", 0)


def test_credentials_for_the_data_nodes_and_for_the_sentinels() -> None:
    parsed = parse_sentinel_url(
        "redis+sentinel://user:p%40ss@a:1,b:2/cache?sentinel_password=s%26cret"
    )
    assert (parsed.username, parsed.password, parsed.sentinel_password) == (
        "user",
        "p@ss",
        "s&cret",
    )
    assert "p@ss" not in repr(parsed) and "s&cret" not in repr(parsed)


def test_a_password_alone_logs_in_as_the_default_user() -> None:
    parsed = parse_sentinel_url("redis+sentinel://:secret@a:1/cache")
    assert (parsed.username, parsed.password) == (None, "secret")


@pytest.mark.parametrize(
    "url", ["redis://h:6379/0", "rediss://h:6380", "unix:///run/redis.sock", "REDIS://h:6379"]
)
def test_the_other_redis_urls_are_taken_as_they_are(url: str) -> None:
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url


def test_the_scheme_is_matched_in_any_case() -> None:
    url = "Redis+Sentinel://a:1/cache"
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url
    assert isinstance(redis_client(url, 0.25).connection_pool, SentinelConnectionPool)


def test_redis_password_fills_in_the_store_user() -> None:
    settings = Settings.from_env(
        {"REDIS_URL": "redis+sentinel://a:1,b:2/cache", "REDIS_PASSWORD": "pw/1"}
    )
    parsed = parse_sentinel_url(settings.effective_redis_url)
    assert (parsed.username, parsed.password) == (REDIS_USER, "pw/1")
    assert parsed.sentinels == (("a", 1), ("b", 2))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel:///cache", "names no Sentinel"),
        ("redis+sentinel://user:pw@/cache", "names no Sentinel"),
        ("redis+sentinel://a:1", "names no service"),
        ("redis+sentinel://a:1/", "names no service"),
        ("redis+sentinel://a:1//0", "names no service"),
        ("redis+sentinel://a/cache", "Sentinel 'a' is not host:port"),
        ("redis+sentinel://a:1,b/cache", "Sentinel 'b' is not host:port"),
        ("redis+sentinel://a:0/cache", "Sentinel 'a:0' is not host:port"),
        ("redis+sentinel://a:70000/cache", "Sentinel 'a:70000' is not host:port"),
        ("redis+sentinel://a:x/cache", "Sentinel 'a:x' is not host:port"),
        ("redis+sentinel://:1/cache", "Sentinel ':1' is not host:port"),
        ("redis+sentinel://[::1/cache", "Sentinel '\\[::1' is not host:port"),
        ("redis+sentinel://a:1/cache/one", "the database must be a number, got 'one'"),
        ("redis+sentinel://a:1/cache/²", "the database must be a number, got '²'"),
        ("redis+sentinel://a:1/cache?db=2", "unknown parameter 'db'"),
        ("redis-sentinel://a:1/cache", "must start with one of redis://, rediss://, unix://"),
        ("localhost:6379", "must start with one of"),
    ],
)
def test_a_malformed_redis_url_is_refused_at_settings_time(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as refused:
        Settings.from_env({"REDIS_URL": url})
    assert refused.value.problems[0].startswith("REDIS_URL")


def test_the_refusal_never_shows_a_password() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"REDIS_URL": "redis+sentinel://u:hunter2@a:1?sentinel_password=s3"})
    assert "hunter2" not in str(refused.value) and "s3" not in str(refused.value)
    assert "redis+sentinel://a:1" in str(refused.value)


def test_toystore_up_lists_a_bad_redis_url_with_the_others_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis+sentinel://a:1,b:port/cache")
    monkeypatch.setenv("LOG_LEVEL", "bogus")
    assert cli.main(["up", "--data-dir", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "toystore: 2 bad settings:"
    assert any("REDIS_URL" in line and "Sentinel 'b:port'" in line for line in lines[1:])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis+sentinel://u:pw@a:1,b:2/cache/0", "redis+sentinel://a:1,b:2/cache/0"),
        ("redis+sentinel://:pw@a:1/cache", "redis+sentinel://a:1/cache"),
        ("redis+sentinel://a:1/cache?sentinel_password=s", "redis+sentinel://a:1/cache"),
        ("redis+sentinel://u:p@w@a:1/c?sentinel_password=s&x=1", "redis+sentinel://a:1/c"),
        ("redis://u:pa?ss@h:6379/0", "redis://h:6379/0"),  # an unescaped ? in the password
        ("redis://u:pa/ss@h:6379/0", "redis://h:6379/0"),
        ("redis+sentinel://a:1/c?sentinel_pasword=s3cret", "redis+sentinel://a:1/c"),  # misspelt
        ("redis+sentinel://a:1/c?sentinel_password=a@b", "redis+sentinel://b"),  # nothing leaks
        ("redis://u:pw@host:6379/0?password=pw", "redis://host:6379/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("not a url", "not a url"),
    ],
)
def test_without_credentials_takes_out_every_password(url: str, shown: str) -> None:
    assert without_credentials(url) == shown


def test_with_redis_credentials_logs_the_sentinel_url_in_once() -> None:
    url = with_redis_credentials("redis+sentinel://a:1,b:2/cache", "pw")
    assert url == f"redis+sentinel://{REDIS_USER}:pw@a:1,b:2/cache"
    assert with_redis_credentials(url, "other") == url


def test_the_client_of_a_sentinel_url_asks_the_sentinels_for_the_primary() -> None:
    client = redis_client(
        "redis+sentinel://u:pw@a:1,b:2/cache/3?sentinel_password=s", 0.25, health_check_interval=5
    )
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.is_master
    assert pool.service_name == "cache"
    options = pool.connection_kwargs
    assert (options["db"], options["username"], options["password"]) == (3, "u", "pw")
    assert (options["socket_timeout"], options["health_check_interval"]) == (0.25, 5)
    assert options["retry"].get_retries() == 0
    sentinels = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
    assert [(s["host"], s["port"], s["password"]) for s in sentinels] == [
        ("a", 1, "s"),
        ("b", 2, "s"),
    ]
    assert all(s["socket_timeout"] == 0.25 and s["retry"].get_retries() == 0 for s in sentinels)


def test_the_client_of_a_plain_url_has_the_same_options() -> None:
    client = redis_client("redis://u:pw@host:6379/1", 0.25)
    options = client.connection_pool.connection_kwargs
    assert (options["host"], options["db"], options["password"]) == ("host", 1, "pw")
    assert (options["socket_connect_timeout"], options["health_check_interval"]) == (0.25, 0)
    assert options["retry"].get_retries() == 0
