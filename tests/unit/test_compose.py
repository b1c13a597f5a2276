"""docker-compose.yml and the Dockerfile agree with the code's configuration.

Docker need not be installed: the files are read as YAML and text, and each service's
environment goes through ``Settings.from_env`` exactly as it would inside its container.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cluster import (
    APP_MODULES,
    REDIS_ACL_FILE,
    REDIS_PASSWORD_FILE,
    TOKEN_FILE,
    service_kind,
    service_names,
    start_tiers,
)
from app.common.config import Settings
from tests.conftest import _setting_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# The compose file runs the store `toystore up` runs with the default settings.
DEFAULTS = Settings()
ALL_SERVICES = service_names(DEFAULTS.replicas)
APP_SERVICES = [name for name in ALL_SERVICES if name != "redis"]
# The order `toystore up` starts them in; each tier needs the ones before it.
TIERS = start_tiers(DEFAULTS.replicas)
LOAD_PROFILE = "load"

# ${NAME}, ${NAME:-default} and ${NAME-default}, as compose interpolates them.
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def _interpolate(value: Any) -> Any:
    """The file as compose sees it with no variable set: every ${...} takes its default."""
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    if not isinstance(value, str):
        return value

    def default(match: re.Match[str]) -> str:
        assert match["default"] is not None, f"${{{match['name']}}} has no default"
        return match["default"]

    return _VARIABLE.sub(default, value)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _interpolate(raw)["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment must be a mapping"
    # Compose passes numbers and booleans on in its own spelling; quoting keeps them exact.
    for key, value in env.items():
        assert isinstance(value, str), f"{key}: quote the value"
    return env


def _settings(service: dict[str, Any]) -> Settings:
    # The secret files exist only inside the containers; their wiring is checked on its own.
    env = {key: value for key, value in _env(service).items() if not key.endswith("_FILE")}
    return Settings.from_env(env)


SECRETS = {"INTERNAL_TOKEN_FILE": "internal_token", "REDIS_PASSWORD_FILE": "redis_password"}


def test_secrets_come_from_files_that_are_never_committed(raw, services) -> None:
    declared = raw["secrets"]
    for name, service in services.items():
        if "build" in service and service["build"]["target"] == "app":
            env = _env(service)
            for variable, secret in SECRETS.items():
                assert env[variable] == f"/run/secrets/{secret}", (name, variable)
                assert secret in service["secrets"], name
    assert declared["internal_token"]["file"] == f"./secrets/{TOKEN_FILE}"
    assert declared["redis_password"]["file"] == f"./secrets/{REDIS_PASSWORD_FILE}"
    assert declared["redis_acl"]["file"] == f"./secrets/{REDIS_ACL_FILE}"
    assert _flag(services["redis"]["command"], "--aclfile") == "/run/secrets/redis_acl"
    assert {"redis_acl", "redis_password"} <= set(services["redis"]["secrets"])
    assert "secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    assert _dockerignored(f"secrets/{TOKEN_FILE}")


def test_internal_services_sit_on_an_internal_network_only(raw, services) -> None:
    assert raw["networks"]["internal"]["internal"] is True
    for name, service in _default_services(services).items():
        if name == "frontend":
            assert set(service["networks"]) == {"internal", "public"}
        else:
            assert service["networks"] == ["internal"], name
            assert "ports" not in service, name


def _default_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services `docker compose up` starts without a --profile."""
    return {name: service for name, service in services.items() if not service.get("profiles")}


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each short-syntax port mapping."""
    mappings = []
    for entry in service.get("ports", []):
        assert isinstance(entry, str), "use the short syntax, HOST:CONTAINER"
        parts = entry.split(":")
        assert len(parts) in (2, 3), f"publish explicitly as [ADDRESS:]HOST:CONTAINER: {entry}"
        address = parts[0] if len(parts) == 3 else ""
        mappings.append((address, int(parts[-2]), int(parts[-1])))
    return mappings


def _mounts(service: dict[str, Any], *, bind: bool) -> dict[str, str]:
    """Source to container path of each bind mount (a host path), or else of each named volume."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        if source.startswith((".", "/")) == bind:
            mounts[source] = target
    return mounts


def _named_volumes(service: dict[str, Any]) -> dict[str, str]:
    return _mounts(service, bind=False)


def _bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    return _mounts(service, bind=True)


def test_every_service_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(_default_services(services)) == set(ALL_SERVICES)
    assert services["locust"]["profiles"] == [LOAD_PROFILE]


def test_app_services_run_toystore_serve(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        kind = service_kind(name)
        assert kind in APP_MODULES
        assert services[name]["command"] == ["toystore", "serve", kind], name
        assert services[name]["build"]["target"] == "app", name


def test_only_the_frontend_is_published(services: dict[str, dict[str, Any]]) -> None:
    published = {
        name: _published(service)
        for name, service in _default_services(services).items()
        if service.get("ports")
    }
    port = _settings(services["frontend"]).frontend_port
    assert published == {"frontend": [("", port, port)]}
    # Nothing else is to reach the internal services: they are neither published nor exposed.
    for name, service in services.items():
        assert "expose" not in service, name


def test_locust_ui_is_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    assert [address for address, _, _ in _published(services["locust"])] == ["127.0.0.1"]


def test_environment_names_only_known_settings(services: dict[str, dict[str, Any]]) -> None:
    known = _setting_names()
    for name in APP_SERVICES:
        unknown = set(_env(services[name])) - known
        assert not unknown, f"{name}: not settings of app/common/config.py: {sorted(unknown)}"


def test_every_app_service_finds_the_others(services: dict[str, dict[str, Any]]) -> None:
    settings = {name: _settings(services[name]) for name in APP_SERVICES}
    catalog = settings["catalog"]
    redis_port = int(_flag(services["redis"]["command"], "--port"))
    for name, own in settings.items():
        assert own.host == "0.0.0.0", f"{name} must listen beyond its container"
        assert own.catalog_url == f"http://catalog:{catalog.catalog_port}", name
        assert own.redis_url == f"redis://redis:{redis_port}/0", name
        assert own.replicas == {
            rid: f"http://{replica}:{settings[replica].replica_port(rid)}"
            for replica in APP_SERVICES
            if (rid := settings[replica].replica_id)
        }, name
        assert own.quorum_size == DEFAULTS.quorum_size, name
    assert sorted(own.replica_id for own in settings.values()) == [0, 0, *sorted(DEFAULTS.replicas)]
    for name in APP_SERVICES:
        if service_kind(name) == "replica":
            assert f"replica-{settings[name].replica_id}" == name


def test_the_defaults_are_the_ports_of_the_readme(services: dict[str, dict[str, Any]]) -> None:
    frontend = _settings(services["frontend"])
    assert frontend.frontend_port == DEFAULTS.frontend_port == 8000
    assert _settings(services["catalog"]).catalog_port == DEFAULTS.catalog_port
    assert {rid: frontend.replica_port(rid) for rid in frontend.replicas} == {
        rid: DEFAULTS.replica_port(rid) for rid in DEFAULTS.replicas
    }


def test_environment_can_be_tuned_from_the_shell(raw: dict[str, Any]) -> None:
    env = raw["services"]["replica-1"]["environment"]
    assert env["ORDER_WRITE_QUORUM"] == "${ORDER_WRITE_QUORUM:-majority}"
    tuned = _settings({"environment": {**_interpolate(env), "ORDER_WRITE_QUORUM": "1"}})
    assert tuned.quorum_size == 1


def test_stateful_services_keep_their_data_in_volumes(
    raw: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    owners: dict[str, str] = {}
    for name in APP_SERVICES:
        volumes = _named_volumes(services[name])
        if name == "frontend":
            assert volumes == {}, "the front-end keeps no state"
            continue
        data_dir = str(_settings(services[name]).data_dir)
        assert list(volumes.values()) == [data_dir], name
        (volume,) = volumes
        assert volume not in owners, f"{name} and {owners.get(volume)} share {volume}"
        owners[volume] = name
    assert set(raw["volumes"]) == set(owners)


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _redis_conf(key: str) -> str:
    for line in (ROOT / "redis" / "redis.conf").read_text().splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].lower() == key:
            return parts[1].strip()
    raise KeyError(key)


def test_redis_runs_the_project_config(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert redis["image"].startswith("redis:"), "the official image"
    command = redis["command"]
    assert command[0] == "redis-server"
    mounts = _bind_mounts(redis)
    assert mounts == {"./redis/redis.conf": command[1]}
    assert _redis_conf("maxmemory-policy") == "allkeys-lru"
    assert _redis_conf("save") == '""'
    assert _flag(command, "--bind") == "0.0.0.0"


def test_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in _default_services(services).items():
        for source in _bind_mounts(service):
            assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the tree"


def test_locust_runs_the_mounted_locustfile(services: dict[str, dict[str, Any]]) -> None:
    locust = services["locust"]
    command = locust["command"]
    assert command[0] == "locust"
    assert _bind_mounts(locust) == {"./locustfile.py": _flag(command, "-f")}
    frontend = _settings(services["frontend"])
    assert _flag(command, "--host") == f"http://frontend:{frontend.frontend_port}"
    assert locust["build"]["target"] == LOAD_PROFILE


def test_every_default_service_has_a_health_check(services: dict[str, dict[str, Any]]) -> None:
    for name, service in _default_services(services).items():
        test = service["healthcheck"]["test"]
        if name == "redis":  # a shell, to read the password from its secret
            assert test[0] == "CMD-SHELL" and "/run/secrets/redis_password" in test[1]
        else:
            assert test == ["CMD", "toystore", "health", service_kind(name)], name


def test_services_start_in_the_order_toystore_up_uses(
    services: dict[str, dict[str, Any]],
) -> None:
    started: list[str] = []
    for tier in TIERS:
        for name in tier:
            depends = services[name].get("depends_on", {})
            assert set(depends) == set(started), name
            assert all(item["condition"] == "service_healthy" for item in depends.values())
        started.extend(tier)


# The Dockerfile.


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile line, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def _stages() -> dict[str, list[tuple[str, str]]]:
    """The instructions of each named stage, in order."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in _instructions():
        if word == "FROM":
            image, _, name = rest.partition(" AS ")
            current = [(word, image.strip())]
            stages[name.strip()] = current
        else:
            current.append((word, rest))
    return stages


def _dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last match wins)."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.removeprefix("**/")):
            ignored = not negated
    return ignored


# An image tag that names an exact release (x.y.z), so a rebuild gets the same base.
_PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+(-[\w.-]+)?$")


def test_image_is_python_slim_and_the_default_stage_is_the_app() -> None:
    stages = _stages()
    base = list(stages.values())[0][0]
    assert base[0] == "FROM" and base[1].startswith("python:3.11.") and "-slim" in base[1]
    assert list(stages)[-1] == "app", "`docker build .` must give the app image"


def test_every_image_from_a_registry_is_pinned_to_a_release(
    services: dict[str, dict[str, Any]],
) -> None:
    built_here = {service["image"] for service in services.values() if "build" in service}
    pulled = [s["image"] for s in services.values() if s.get("image") not in built_here]
    bases = [rest.split()[0] for word, rest in _instructions() if word == "FROM"]
    stages = set(_stages())
    for image in pulled + [b for b in bases if b not in stages]:
        assert _PINNED.match(image), f"{image} is not pinned to a release"


def test_the_image_installs_the_hashed_runtime_lock() -> None:
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN")
    assert "--require-hashes -r requirements/runtime.lock" in runs
    locked = re.search(r"^locust==(\S+)", (ROOT / "requirements" / "dev.lock").read_text(), re.M)
    assert locked and f"locust=={locked.group(1)}" in runs, "the load image's Locust is locked"


def test_compose_builds_stages_that_exist(services: dict[str, dict[str, Any]]) -> None:
    targets = {service["build"]["target"] for service in services.values() if "build" in service}
    assert targets <= set(_stages())


def test_image_runs_as_a_user_and_keeps_data_in_a_volume(
    services: dict[str, dict[str, Any]],
) -> None:
    instructions = _instructions()
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    volumes = [rest for word, rest in instructions if word == "VOLUME"]
    assert volumes == [str(_settings(services["catalog"]).data_dir)]


def test_image_has_a_health_check_and_serves() -> None:
    app = dict(_stages()["app"])
    assert "toystore" in app["HEALTHCHECK"] and "health" in app["HEALTHCHECK"]
    assert app["CMD"].startswith('["toystore", "serve"')


def test_image_installs_the_project_without_dev_extras() -> None:
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN")
    assert "pip install" in runs
    assert "[dev" not in runs


def test_files_the_dockerfile_copies_are_in_the_build_context() -> None:
    copies = [rest for word, rest in _instructions() if word == "COPY"]
    assert copies
    for arguments in copies:
        sources = [word for word in shlex.split(arguments)[:-1] if not word.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not _dockerignored(source.rstrip("/")), f"{source} is in .dockerignore"


def test_build_context_leaves_out_local_state() -> None:
    for path in (".venv", ".git", "var", "tests", "app/__pycache__"):
        assert _dockerignored(path), path
