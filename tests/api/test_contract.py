"""The API's contract as a client in another language reads it: the OpenAPI document validates the documentation's
own examples under a strict JSON Schema validator, and a 400 names the field at fault."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from odin.api.app import openapi_document
from tests.api.conftest import PASSWORD, Served

DOCS = Path(__file__).resolve().parents[2] / "docs"


def json_examples(page: str) -> list[Any]:
    """The ```json blocks of a docs page that hold one JSON value each."""
    found = []
    for block in re.findall(r"```json\n(.*?)```", (DOCS / page).read_text(), re.S):
        try:
            found.append(json.loads(block))
        except json.JSONDecodeError:
            continue  # several messages in one block (docs/websocket.md)
    return found


def validator(component: str) -> jsonschema.protocols.Validator:
    """A strict (Draft 2020-12, what OpenAPI 3.1 uses) validator for one component of the served document."""
    document = openapi_document()
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_run_params_accept_integers_under_a_strict_validator() -> None:
    start = validator("StartRun")
    examples = [e for e in json_examples("api.md") if isinstance(e, dict) and "pipeline" in e]
    assert examples, "docs/api.md shows a POST /v1/runs body"
    for example in examples:
        start.validate(example)  # {"epochs": 300}: an integer matched both `integer` and `number` under `oneOf`
    start.validate({"pipeline": "train", "params": {"epochs": 300, "lr": 0.5, "augment": False, "note": "x"}})
    assert not start.is_valid({"pipeline": "train", "params": {"epochs": [300]}})
    validator("Rerun").validate({"params": {"epochs": 300}})


def test_the_login_fields_are_documented_and_match_the_schema() -> None:
    login = validator("TokenRequest")
    examples = [e for e in json_examples("api.md") if isinstance(e, dict) and "password" in e]
    assert examples and set(examples[0]) == {"username", "password"}
    login.validate(examples[0])
    assert not login.is_valid({**examples[0], "remember": True})
    answer = [e for e in json_examples("api.md") if isinstance(e, dict) and "access_token" in e]
    assert answer, "docs/api.md shows the login answer"
    validator("TokenResponse").validate(answer[0])


@pytest.mark.parametrize(
    ("method", "path", "body", "detail"),
    [
        ("POST", "/v1/runs", {"pipeline": "ok", "foo": 1}, 'unknown field "foo"'),
        ("POST", "/v1/runs", {"pipeline": 7}, 'field "pipeline": Expected `str`, got `int`'),
        ("POST", "/v1/runs", {}, 'missing field "pipeline"'),
        ("POST", "/v1/runs/x/rerun", {"failed": True}, 'unknown field "failed"'),
        ("POST", "/v1/auth/tokens", {"name": "ci", "expires": 3}, 'unknown field "expires"'),
        ("POST", "/v1/users", {"username": "u", "password": "p" * 12, "rol": "viewer"}, 'unknown field "rol"'),
        ("GET", "/v1/runs?limit=lots", None, 'query parameter "limit"'),
    ],
)
def test_a_bad_body_names_the_field(served: Served, method: str, path: str, body: Any, detail: str) -> None:
    r = served.request(method, path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith(detail), r.json()
    assert "not valid JSON" not in r.text


def test_an_unknown_login_field_is_named_and_malformed_json_is_still_called_so(served: Served) -> None:
    body = {"username": "admin", "password": PASSWORD, "remember_me": True}
    r = httpx.post(f"{served.url}/v1/auth/token", json=body, timeout=30)
    assert (r.status_code, r.json()["detail"]) == (400, 'unknown field "remember_me"')
    r = served.post("/v1/runs", content=b'{"pipeline": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
