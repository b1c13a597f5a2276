"""deploy/k8s/ is valid Kubernetes and agrees with the code's configuration.

No cluster is needed: every object is checked against the official schemas that
kubernetes-validate bundles, and the settings go through ``Settings.from_env`` exactly as
they would inside a pod.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.common.config import Settings
from tests.conftest import _setting_names

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# The Kubernetes release the manifests are checked against.
KUBERNETES_VERSION = "1.31.0"
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


OBJECTS = _objects()


def _find(kind: str, name: str) -> dict[str, Any]:
    return next(o for o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name)


def _container(kind: str, name: str) -> dict[str, Any]:
    return _find(kind, name)["spec"]["template"]["spec"]["containers"][0]


ENV = _find("ConfigMap", "toystore-env")["data"]
SETTINGS = Settings.from_env({**ENV, "INTERNAL_TOKEN_FILE": "", "REDIS_PASSWORD_FILE": ""})
APPS = {
    "frontend": ("Deployment", SETTINGS.frontend_port),
    "catalog": ("Deployment", SETTINGS.catalog_port),
}
APPS["replica"] = ("StatefulSet", SETTINGS.replica_port(1))


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_object_matches_the_kubernetes_schema(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_every_env_var_is_a_known_setting() -> None:
    assert set(ENV) <= _setting_names()


def test_secrets_are_files_never_values() -> None:
    assert not any(o["kind"] == "Secret" for o in OBJECTS)
    assert "INTERNAL_TOKEN" not in ENV and "REDIS_PASSWORD" not in ENV
    for name in APPS:
        kind = APPS[name][0]
        mounts = {m["mountPath"] for m in _container(kind, name)["volumeMounts"]}
        assert str(Path(ENV["INTERNAL_TOKEN_FILE"]).parent) in mounts


@pytest.mark.parametrize("name", sorted(APPS))
def test_probes_and_ports_match_the_settings(name: str) -> None:
    kind, port = APPS[name]
    container = _container(kind, name)
    assert container["image"] == f"toystore:{PROJECT_VERSION}"
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port}


def test_replica_statefulset_matches_order_replicas() -> None:
    stateful = _find("StatefulSet", "replica")
    assert stateful["spec"]["replicas"] == len(SETTINGS.replicas)
    service = stateful["spec"]["serviceName"]
    assert _find("Service", service)["spec"]["clusterIP"] == "None"
    # Pod replica-<n> (0-based ordinal) is replica n+1.
    for replica_id, url in SETTINGS.replicas.items():
        assert url.startswith(f"http://replica-{replica_id - 1}.{service}:")
    assert "${HOSTNAME##*-} + 1" in " ".join(_container("StatefulSet", "replica")["command"])
    assert stateful["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_network_policies_keep_the_internal_services_internal() -> None:
    def allowed(name: str) -> set[str] | None:
        rules = _find("NetworkPolicy", name)["spec"]["ingress"]
        if any("from" not in rule for rule in rules):
            return None  # from anywhere
        return {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for r in rules
            for peer in r["from"]
        }

    assert _find("NetworkPolicy", "default-deny-ingress")["spec"]["podSelector"] == {}
    assert allowed("frontend") is None
    assert allowed("catalog") == {"frontend", "replica"}
    assert allowed("replica") == {"frontend", "replica"}
    assert allowed("redis") == {"frontend", "catalog"}
