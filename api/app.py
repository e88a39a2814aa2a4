"""The Litestar application: routes, authentication, error mapping and the OpenAPI document.

`create_app` takes an `AppContext` (store, controller, token keys) so tests and tools build apps over any store;
`odin serve` builds the context from `Settings` (see `odin.cli.admin`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from odin.api.auth.middleware import BearerAuthMiddleware
from odin.api.auth.tokens import TokenKeys, load_or_create_secret
from odin.api.context import AppContext
from odin.api.routes import auth, health, runs
from odin.controller.service import Controller
from odin.controller.settings import Settings
from odin.controller.store.db import StoreUnavailable
from odin.webhooks.routes import webhook_router

log = logging.getLogger(__name__)

API_VERSION = "1"


def token_keys(settings: Settings) -> TokenKeys:
    """HS256 from ODIN_JWT_SECRET, ODIN_JWT_SECRET_FILE, or a secret generated once in the data directory."""
    if settings.jwt_secret is not None:
        return TokenKeys.hs256(settings.jwt_secret.get_secret_value().encode())
    if settings.jwt_secret_file is not None:
        return TokenKeys.hs256(Path(settings.jwt_secret_file).read_bytes().strip())
    return TokenKeys.hs256(load_or_create_secret(settings.data_dir / "jwt-secret"))


def _store_unavailable(_request: Request, exc: StoreUnavailable) -> Response[dict[str, object]]:  # type: ignore[type-arg]
    log.error("request failed: %s", exc)
    return Response(
        {"status_code": 503, "detail": "the database is unavailable; try again shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def create_app(ctx: AppContext) -> Litestar:
    def provide_ctx() -> AppContext:
        return ctx

    return Litestar(
        route_handlers=[
            auth.create_token,
            runs.list_runs,
            runs.get_run,
            health.healthz,
            health.readyz,
            webhook_router(db=ctx.db, settings=ctx.settings, controller=ctx.controller),
        ],
        dependencies={"ctx": Provide(provide_ctx, use_cache=True, sync_to_thread=False)},
        middleware=[DefineMiddleware(BearerAuthMiddleware, keys=ctx.keys)],
        exception_handlers={StoreUnavailable: _store_unavailable},
        openapi_config=OpenAPIConfig(
            title="Odin API",
            version=API_VERSION,
            description="Find, inspect, start, rerun and stop pipeline runs by commit.",
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
            security=[{"bearer": []}],
        ),
        debug=False,
        logging_config=None,  # Odin configures logging once (odin.cli.logs); Litestar must not replace it
    )


def build_context(settings: Settings, controller: Controller) -> AppContext:
    return AppContext(settings=settings, db=controller.db, keys=token_keys(settings), controller=controller)
