"""The OpenAPI document of the public API: served as it is in the repo, valid OpenAPI 3, and
describing exactly the front-end's routes."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import schemathesis
from jsonschema_rs import ValidationError

from app.common.web import new_app
from app.frontend import BLUEPRINTS

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "app" / "frontend" / "openapi.json"


@pytest.fixture(scope="module")
def client():
    app = new_app(__name__, "frontend", max_body_bytes=4096)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app.test_client()


def test_the_served_document_is_the_file_in_the_repo(client):
    reply = client.get("/openapi.json")
    assert reply.status_code == 200
    assert reply.mimetype == "application/json"
    assert reply.data == DOCUMENT.read_bytes()


def test_the_package_ships_the_document():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    assert "openapi.json" in package_data["app.frontend"]


def test_the_document_is_valid_openapi_3():
    document = json.loads(DOCUMENT.read_text())
    assert document["openapi"].startswith("3.")
    schemathesis.openapi.from_dict(document).validate()


def test_the_validator_refuses_an_invalid_document():
    document = json.loads(DOCUMENT.read_text())
    del document["paths"]["/health"]["get"]["responses"]["200"]["description"]
    with pytest.raises(ValidationError):
        schemathesis.openapi.from_dict(document).validate()


def _shape(path: str) -> str:
    """A route with its parameters' names left out: ``/orders/{}``."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def test_every_route_is_documented_and_nothing_else(client):
    routes = {
        (method, _shape(rule.rule))
        for rule in client.application.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    document = json.loads(DOCUMENT.read_text())
    documented = {
        (method.upper(), _shape(path))
        for path, item in document["paths"].items()
        for method in item
    }
    assert documented == routes
