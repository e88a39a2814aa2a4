"""`create_app` leaves the OpenAPI document to its first reader (issue 15: `odin serve` ready ≤ 1.5 s).

Building the document is about half of the app's construction, so it is built on the first request for /schema (or
`odin openapi`), with Odin's corrections applied then. What the app needs from it at once, the query parameters each
route takes, is read from the same definitions without building it; these tests keep both true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import Parameter, Schema

from odin.api.app import _query_names, create_app
from odin.api.auth.tokens import TokenKeys
from odin.api.context import AppContext
from odin.controller.settings import Settings
from odin.controller.store.db import create_db_engine


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Litestar]:
    db = create_db_engine("sqlite://")
    ctx = AppContext(settings=Settings(data_dir=tmp_path), db=db, keys=TokenKeys.hs256(b"\0" * 32))
    yield create_app(ctx)
    db.dispose()


def built(app: Litestar) -> bool:
    return app.plugins.get(OpenAPIPlugin)._openapi is not None


def test_the_document_is_not_built_with_the_app(app: Litestar) -> None:
    assert not built(app), "create_app built the OpenAPI document: `odin serve` pays for it before it is ready"
    assert app.openapi_schema.paths, "it is built when read"
    assert built(app)


def test_the_query_parameters_checked_are_those_the_document_declares(app: Litestar) -> None:
    from_handlers = _query_names(app)
    from_document = {}
    for path, item in (app.openapi_schema.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is not None:
                from_document[(method.upper(), path)] = frozenset(
                    p.name for p in operation.parameters or () if isinstance(p, Parameter) and p.param_in == "query"
                )
    assert from_handlers == from_document
    assert {"commit", "limit"} <= from_handlers[("GET", "/v1/runs")], "a route with query parameters was seen"


def test_the_lazily_built_document_carries_the_corrections(app: Litestar) -> None:
    schemas = (app.openapi_schema.components.schemas or {}) if app.openapi_schema.components else {}
    token_request = schemas["TokenRequest"]
    assert isinstance(token_request, Schema) and token_request.additional_properties is False
    params = schemas["StartRun"].properties["params"]  # type: ignore[union-attr,index]
    assert "anyOf" in str(params.to_schema()) and "oneOf" not in str(params.to_schema())  # type: ignore[union-attr]


def test_no_plugin_litestar_would_add_for_pydantic_or_attrs(app: Litestar) -> None:
    """Litestar adds them whenever pydantic or attrs is installed (pydantic.v1 and attrs imported on the way); no
    handler uses either, so the app does without them."""
    modules = {type(plugin).__module__ for plugin in app.plugins}
    assert not {m for m in modules if m.startswith(("litestar.plugins.pydantic", "litestar.plugins.attrs"))}
