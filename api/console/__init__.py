"""The web console: server-rendered pages over the same app, auth and services as the JSON API (docs/console.md).

Everything it serves ships inside this package (templates/ and static/, package data of the wheel): no CDN, no
Node toolchain, no build step. `console_router` gives the pages with their error handling (a missing session goes to
the login page, other errors become pages), `static_router` the assets, `template_config` the Jinja2 engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from litestar import Request, Response, Router
from litestar.datastructures import CacheControlHeader
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from odin.api.console.pages import PAGES, LoginRequired, base_path, error_page, login_redirect
from odin.api.context import AppContext

__all__ = ["base_path", "console_router", "static_router", "template_config"]

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def console_router(ctx: AppContext) -> Router:
    def on_login_required(request: Request[Any, Any, Any], e: LoginRequired) -> Response[Any]:
        return login_redirect(ctx, request, e)

    def on_error(request: Request[Any, Any, Any], e: Exception) -> Response[Any]:
        return error_page(ctx, request, e)

    return Router(
        path="/",
        route_handlers=PAGES,
        exception_handlers={LoginRequired: on_login_required, Exception: on_error},
        include_in_schema=False,
    )


def static_router() -> Router:
    """The console's CSS and JavaScript, and the vendored API docs bundle: cached for an hour."""
    return create_static_files_router(
        path="/console/static",
        directories=[STATIC],
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=3600),
    )


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Autoescaped HTML; block tags leave no blank lines behind (a 1,000-task run page stays light)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True, auto_reload=False
    )
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))
