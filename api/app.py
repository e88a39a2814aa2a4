"""The Litestar application: routes, authentication, error mapping, the WebSocket hub and the OpenAPI document.

`create_app` takes an `AppContext` (store, controller, token keys) so tests and tools build apps over any store;
`odin serve` builds the context from `Settings` (see `odin.cli.server`). The OpenAPI document Litestar generates
from the handlers' types is the API's contract: it is served at /schema/openapi.json (UI at /schema), and
schemathesis checks the server against it in CI.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar, Request
from litestar.di import Provide
from litestar.exceptions import ValidationException
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.plugins import PluginProtocol
from litestar.routes import HTTPRoute

from odin.api import console
from odin.api.access import access_log
from odin.api.auth.keys import token_keys
from odin.api.auth.middleware import Authenticator, BearerAuthMiddleware
from odin.api.auth.standing import Standings
from odin.api.context import AppContext
from odin.api.errors import EXCEPTION_HANDLERS
from odin.api.inputs import reject_bad_characters
from odin.api.metrics import Metrics, StoreCollector
from odin.api.openapi import correct_when_built
from odin.api.routes import artifacts, auth, commits, gpus, health, pipelines, repos, runs, users
from odin.api.services.gpus import GpuService
from odin.api.version import API_VERSION
from odin.api.ws.asyncapi import ws_schema
from odin.api.ws.handler import ws_endpoint
from odin.api.ws.hub import EventHub
from odin.controller.facade import Controller
from odin.controller.settings import Settings
from odin.webhooks.routes import webhook_router

log = logging.getLogger(__name__)


ROUTES = [
    auth.create_token,
    auth.whoami,
    auth.logout,
    auth.create_api_token_route,
    auth.list_api_tokens_route,
    auth.revoke_api_token_route,
    users.list_users_route,
    users.create_user_route,
    users.get_user_route,
    users.update_user_route,
    repos.list_repos_route,
    repos.add_repo_route,
    repos.get_repo_route,
    repos.update_repo_route,
    repos.remove_repo_route,
    runs.list_runs,
    runs.get_run,
    runs.list_run_tasks,
    runs.start_run,
    runs.rerun_run,
    runs.cancel_run,
    runs.run_events,
    runs.task_events,
    runs.task_logs,
    artifacts.list_artifacts,
    artifacts.get_artifact,
    artifacts.list_artifact_files,
    artifacts.get_artifact_file,
    artifacts.list_results,
    commits.list_commits,
    commits.get_commit,
    pipelines.list_pipelines,
    pipelines.get_pipeline,
    pipelines.get_file,
    pipelines.put_file,
    pipelines.validate,
    gpus.list_nodes,
    gpus.list_gpus,
    health.healthz,
    health.readyz,
    health.metrics,
    ws_endpoint,
    ws_schema,
    # The webhook receivers (odin.webhooks) are added per app in `create_app`: their router needs the context, sets
    # exclude_from_auth (providers prove themselves with signatures) and its own body cap (GitHub's 25 MB).
]

TAGS = [
    Tag(name="auth", description="Log in for a short-lived token; API tokens for CI"),
    Tag(name="runs", description="Find runs by commit; start, rerun, cancel; logs and events"),
    Tag(name="commits", description="Commits Odin has seen: validation, pipelines changed, runs"),
    Tag(name="pipelines", description="Pipelines at any ref; validation; editing files as commits"),
    Tag(name="gpus", description="Nodes and GPUs of the cluster, and the run holding each GPU (Midgard)"),
    Tag(name="users", description="User management (admin)"),
    Tag(name="repos", description="Followed repositories and their branch patterns (admin)"),
    Tag(name="operations", description="Health, readiness, metrics and the WebSocket schema (no token)"),
    Tag(name="webhooks", description="Push notifications from git providers and CI systems (signed, no token)"),
]


class OdinLitestar(Litestar):
    """Litestar without the plugins it adds by itself when their libraries are installed.

    Litestar appends its Pydantic plugins (importing `pydantic.v1` on the way) and its attrs schema plugin to every
    app whose environment has pydantic or attrs, about a tenth of `odin serve`'s start-up; both are installed here for
    other reasons (settings, jsonschema), but no handler takes or returns a pydantic model or an attrs class: bodies
    and answers are msgspec structs (`odin.api.schemas`). So only the msgspec dependency plugin Litestar always adds
    is kept. tests/api/test_lazy_openapi.py checks that the plugins stay out and the OpenAPI document is unchanged
    for it."""

    @staticmethod
    def _get_default_plugins(plugins: list[PluginProtocol]) -> list[PluginProtocol]:
        from litestar.plugins.core import MsgspecDIPlugin

        return [*plugins, MsgspecDIPlugin()]


def create_app(ctx: AppContext) -> Litestar:
    """The API over `ctx`, in steps: the services the handlers share, the app that hands them out, then the query
    parameters each route takes (for the unknown-parameter check). The OpenAPI document is not built here: Litestar
    builds it on the first request for /schema, and `correct_when_built` finishes it then (half of this function's
    time otherwise, on `odin serve`'s way to ready)."""
    services = _services(ctx)
    query_names: QueryNames = {}
    app = OdinLitestar(
        route_handlers=[
            *ROUTES,
            webhook_router(db=ctx.db, settings=ctx.settings, controller=ctx.controller),
            console.console_router(ctx),
            console.static_router(),
        ],
        template_config=console.template_config(),
        before_request=_query_check(query_names),
        dependencies=_dependencies(ctx, services),
        middleware=[access_log, DefineMiddleware(BearerAuthMiddleware, authenticator=services.authenticator)],
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=[services.hub.start],
        on_shutdown=[services.hub.stop, services.gpus.aclose],
        request_max_body_size=ctx.settings.max_body_bytes,
        openapi_config=_openapi_config(console.base_path(ctx)),
        debug=False,
        logging_config=None,  # Odin configures logging once (odin.cli.logs); Litestar must not replace it
    )
    correct_when_built(app)
    query_names.update(_query_names(app))
    return app


QueryNames = dict[tuple[str, str], frozenset[str]]  # (method, path template) -> the query parameters it takes


@dataclass(frozen=True, slots=True)
class _Services:
    """One of each per app: handlers get them as dependencies, the middleware and the lifecycle hooks directly."""

    authenticator: Authenticator
    hub: EventHub
    metrics: Metrics
    gpus: GpuService


def _services(ctx: AppContext) -> _Services:
    standings = Standings(ctx.db, ctx.settings.auth_cache_seconds)
    authenticator = Authenticator(ctx.keys, ctx.api_tokens, standings, max_ttl=ctx.settings.token_ttl)
    hub = EventHub(
        ctx.db, ctx.controller.bus if ctx.controller is not None else None, poll_interval=ctx.settings.ws_poll_interval
    )
    metrics = Metrics(StoreCollector(ctx.db, ctx.controller, lambda: len(hub.connections)))
    gpu_service = GpuService.from_settings(ctx.settings)
    return _Services(authenticator, hub, metrics, gpu_service)


def _dependencies(ctx: AppContext, services: _Services) -> dict[str, Provide]:
    """What handlers may ask for by parameter name (`ctx`, `hub`, `authenticator`, `metrics`, `gpus`)."""

    def provide_ctx() -> AppContext:
        return ctx

    def provide_hub() -> EventHub:
        return services.hub

    def provide_authenticator() -> Authenticator:
        return services.authenticator

    def provide_metrics() -> Metrics:
        return services.metrics

    def provide_gpus() -> GpuService:
        return services.gpus

    return {
        "ctx": Provide(provide_ctx, use_cache=True, sync_to_thread=False),
        "hub": Provide(provide_hub, use_cache=True, sync_to_thread=False),
        "authenticator": Provide(provide_authenticator, use_cache=True, sync_to_thread=False),
        "metrics": Provide(provide_metrics, use_cache=True, sync_to_thread=False),
        "gpus": Provide(provide_gpus, use_cache=True, sync_to_thread=False),
    }


def _query_check(query_names: QueryNames) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """The before-request hook; `query_names` is filled once the app (and so its OpenAPI document) exists."""

    async def reject_unknown_query(request: Request[Any, Any, Any]) -> None:  # async: no worker thread for it
        """`?comit=abc` must not quietly list every run: a query parameter a route does not take is a 400.
        Characters no input may carry (NUL, control characters) are refused first (`odin.api.inputs`)."""
        await reject_bad_characters(request)
        allowed = query_names.get((request.method, request.scope.get("path_template", "")))
        if allowed is None:
            return
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            takes = ", ".join(sorted(allowed)) or "none"
            raise ValidationException(
                f"unknown query parameter {', '.join(map(repr, unknown))}; this route takes: {takes}"
            )

    return reject_unknown_query


def _query_names(app: Litestar) -> QueryNames:
    """The query parameters each operation of the OpenAPI document declares, read from what the document is made
    of without building it: the routes it includes, and the parameters Litestar parses for each handler (its own,
    and its dependencies'). tests/api/test_lazy_openapi.py checks this against the built document."""
    found: QueryNames = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method, (handler, kwargs_model) in route.route_handler_map.items():
            if handler.resolve_include_in_schema():
                names = frozenset(p.field_alias for p in kwargs_model.expected_query_params)
                found[(str(method), route.path_format or "/")] = names
    return found


def _openapi_config(base: str) -> OpenAPIConfig:
    """`base`: the external path prefix. The docs UI (Redoc) is the copy the console ships, never a CDN's, and without
    Google Fonts, so /schema works offline."""
    return OpenAPIConfig(
        title="Odin API",
        version=API_VERSION,
        description=(
            "Find, inspect, start, rerun and stop pipeline runs by commit. Authenticate with "
            "`Authorization: Bearer <token>`: a JWT from POST /v1/auth/token, or an API token `odin_...`. "
            "Errors are JSON `{status_code, detail, extra?}`. The WebSocket protocol at /v1/ws is documented in "
            "docs/websocket.md, and its messages as an AsyncAPI 3.0 document at /v1/ws/schema."
        ),
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT or API token",
                    description="A JWT from POST /v1/auth/token, or an API token (odin_...)",
                )
            }
        ),
        security=[{"bearer": []}],
        tags=TAGS,
        use_handler_docstrings=False,
        render_plugins=[
            RedocRenderPlugin(
                js_url=f"{base}/console/static/redoc/redoc.standalone.js",
                google_fonts=False,
                favicon="<link rel='icon' href='data:,'>",  # Litestar's default icon is a CDN's
            )
        ],
    )


def build_context(settings: Settings, controller: Controller) -> AppContext:
    """The context `odin serve` uses; raises `KeyConfigError` for unusable JWT key settings."""
    return AppContext(settings=settings, db=controller.db, keys=token_keys(settings), controller=controller)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, without a server or a database: for `odin openapi`, client generators and tests."""
    import tempfile

    from odin.api.auth.tokens import TokenKeys
    from odin.controller.store.db import create_db_engine

    db = create_db_engine("sqlite://")
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            ctx = AppContext(settings=Settings(data_dir=Path(data_dir)), db=db, keys=TokenKeys.hs256(b"\0" * 32))
            return create_app(ctx).openapi_schema.to_schema()
    finally:
        db.dispose()
