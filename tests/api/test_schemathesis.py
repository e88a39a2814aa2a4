"""The OpenAPI document is the contract: schemathesis fuzzes every operation of a real server against it.

Valid and invalid inputs (generated from the document itself) must never produce a 5xx, and every response must
match the document: a documented status code, the documented content type, a body valid against its schema. The
number of examples per operation is bounded so this stays a couple of minutes in CI.

Generated strings are also poisoned at times with NUL and control characters (in the path, the query and JSON
bodies), the bytes that used to reach Postgres and answer 500; the run is made on SQLite and, smaller, on Postgres.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from odin.api.app import openapi_document
from tests.api.conftest import Served, start_server
from tests.support.postgres import scratch_database

EXAMPLES = 50
POSTGRES_EXAMPLES = 10
LOGS_OUT, LOGS_OUT_PASSWORD = "fuzz-logout", "fuzz-logout-password"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("fuzzed")
    unlimited = {"ODIN_LOGIN_ATTEMPTS_PER_MINUTE_PER_IP": "100000", "ODIN_LOGIN_ATTEMPTS_PER_MINUTE": "100000"}
    s = start_server(tmp, f"sqlite:///{tmp / 'odin.db'}", "sqlite", unlimited)
    _session["token"] = s.admin_token
    s.user(LOGS_OUT, "viewer", password=LOGS_OUT_PASSWORD)
    _session["url"] = s.url
    try:
        yield s
    finally:
        s.server.stop()


@pytest.fixture(scope="module")
def fuzzed_postgres(postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("fuzzed-postgres")
    with scratch_database(postgres_admin_url) as url:
        s = start_server(tmp, url, "postgres", {"ODIN_LOGIN_ATTEMPTS_PER_MINUTE_PER_IP": "100000"})
        _session["token"] = s.admin_token
        try:
            yield s
        finally:
            s.server.stop()


# Built offline from the app itself (the server below serves the same document: see the first test).
# Invalid input may also be refused for its size (413, ODIN_MAX_BODY_BYTES) before it is parsed.
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}})
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)
_session: dict[str, str] = {}


@schema.auth(refresh_interval=None)
class Bearer:
    """Schemathesis applies the token itself, so that the cases it generates without one really go without."""

    def get(self, case: Case, context: schemathesis.AuthContext) -> str:
        if case.operation.path == "/v1/auth/logout" and "url" in _session:
            # Logging out ends every session of the user: never admin's, which every other case uses.
            body = {"username": LOGS_OUT, "password": LOGS_OUT_PASSWORD}
            return str(httpx.post(f"{_session['url']}/v1/auth/token", json=body).json()["access_token"])
        return _session.get("token", "no-server-yet")  # asked once at collection, before the server exists

    def set(self, case: Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


# What a generated string may be poisoned with: the characters no input may carry, and the ones logs must escape.
CONTROL = st.sampled_from(["\x00", "\n", "\r", "\x01", "\x1b", "\x7f"])


def _string_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    # Not empty strings: the hook cannot tell a negative case from a positive one, and a character put into the
    # empty string of a negative case (`minLength: 1`) makes it valid, which `negative_data_rejection` then calls a
    # failure of the server (a token named "\x1b" accepted).
    if isinstance(value, str):
        return [path] if value else []
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _string_paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _string_paths(item, (*path, i))]
    return []


def _poisoned(value: Any, path: tuple[Any, ...], char: str, at: int) -> Any:
    if not path:
        return value[: at % (len(value) + 1)] + char + value[at % (len(value) + 1) :]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _poisoned(value[path[0]], path[1:], char, at)
    return copy


def poison_some_strings(_ctx: Any, value: Any) -> st.SearchStrategy[Any]:
    """The generated value as it is, or with a control character inserted into one of its strings."""
    paths = _string_paths(value)
    if not paths:
        return st.just(value)
    poisoned = st.tuples(st.sampled_from(paths), CONTROL, st.integers(0, 64)).map(
        lambda t: _poisoned(value, t[0], t[1], t[2])
    )
    return st.one_of(st.just(value), poisoned)


for _container in ("query", "path_parameters", "body"):
    schema.hooks.register_hook_with_name(poison_some_strings, f"flatmap_{_container}")


def test_the_server_serves_the_document_that_is_fuzzed(fuzzed: Served) -> None:
    served = httpx.get(f"{fuzzed.url}/schema/openapi.json").json()
    assert served == json.loads(json.dumps(openapi_document()))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_every_operation_keeps_its_contract(case: Case, fuzzed: Served) -> None:
    case.call_and_validate(
        base_url=fuzzed.url,
        timeout=30,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
    )


@pytest.mark.postgres
@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=POSTGRES_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_every_operation_keeps_its_contract_on_postgres(case: Case, fuzzed_postgres: Served) -> None:
    """Postgres refuses what SQLite stores (NUL): the same contract, fewer examples."""
    case.call_and_validate(
        base_url=fuzzed_postgres.url,
        timeout=30,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, negative_data_rejection],
    )


def test_poisoning_leaves_empty_strings_alone() -> None:
    """A negative case's empty string stays empty (one poisoned character would make it valid, see _string_paths)."""
    assert _string_paths({"name": "", "tags": ["ci", ""], "n": 3}) == [("tags", 0)]
