"""The console's pages: log in and out, the commit timeline, a run, pipelines, GPUs. Server-rendered (Jinja2).

Every page authenticates from the session cookie (`odin.api.auth.cookies`) with the API's own `Authenticator`, so a
logout, a disabled user or a changed role applies to the console at once, exactly as to the API. A browser without a
valid session is sent to the login page (and back afterwards) instead of receiving a 401. The pages' buttons call the
JSON API with the same cookie and the page's CSRF token; the API's guards decide, the pages only hide what a role
cannot do. All URLs are built from the external path prefix (`ODIN_PUBLIC_URL`'s path), so the console works behind
a reverse proxy that serves Odin under `/odin/`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.params import Body, PathParameter, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from odin.api.auth.cookies import COOKIE, CSRF_FIELD, cookie_token, csrf_ok, csrf_token, same_origin
from odin.api.auth.middleware import Authenticator, Principal
from odin.api.auth.tokens import LEEWAY_SECONDS, TokenInvalid
from odin.api.auth.users import Role, end_session
from odin.api.console import links, source, views
from odin.api.context import AppContext
from odin.api.deps import Ctx, in_thread
from odin.api.errors import classify
from odin.api.services import commits as commit_service
from odin.api.services import pipelines as pipeline_service
from odin.api.services.commits import VALIDATIONS
from odin.api.services.gpus import GpuService
from odin.api.services.sessions import log_in
from odin.controller.facade import MAIN_FILE, FileMissing
from odin.controller.store import run_queries

log = logging.getLogger(__name__)


class LoginRequired(Exception):
    """No valid session: the browser goes to the login page, then back to `next`."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    token: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)

    @property
    def can_act(self) -> bool:
        """Start, rerun, cancel: members and admins (the API's guards enforce it; the pages only hide buttons)."""
        return self.principal.role.allows(Role.MEMBER)


def base_path(ctx: AppContext) -> str:
    """The path Odin is served under (`/odin` for ODIN_PUBLIC_URL=https://example.com/odin), or ''."""
    url = ctx.settings.public_url
    return urlsplit(url).path.rstrip("/") if url else ""


async def _viewer(request: Request[Any, Any, Any], authenticator: Authenticator) -> Viewer:
    token = cookie_token(request.cookies)
    if token is None:
        raise LoginRequired(None)
    try:
        principal = await authenticator.authenticate(token)
    except TokenInvalid as e:
        raise LoginRequired(str(e)) from e
    return Viewer(principal, token)


def _page(ctx: AppContext, viewer: Viewer | None, name: str, code: int = 200, **values: Any) -> Template:
    context = {"base": base_path(ctx), "viewer": viewer, "csrf": viewer.csrf if viewer else "", **values}
    return Template(template_name=name, context=context, status_code=code, headers=_NO_STORE)


# Pages hold a CSRF token and live data: never cached, never framed, and only this site's scripts and styles run.
_NO_STORE = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
}


def _safe_next(ctx: AppContext, target: str | None) -> str:
    """Only a console page of this server: a login form must not become an open redirect."""
    base = base_path(ctx)
    if target and target.startswith(f"{base}/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{base}/console/commits"


# -- entry points -------------------------------------------------------------------------------------------------


@get("/", include_in_schema=False, sync_to_thread=False)
def root(ctx: Ctx) -> Redirect:
    """A person opening the server's address gets the console, not a JSON 404."""
    return Redirect(f"{base_path(ctx)}/console/commits")


@get("/console", include_in_schema=False, sync_to_thread=False)
def console_root(ctx: Ctx) -> Redirect:
    return Redirect(f"{base_path(ctx)}/console/commits")


# -- login and logout ---------------------------------------------------------------------------------------------


@dataclass
class LoginForm:
    username: str = ""
    password: str = ""
    next: str = ""


@get("/console/login", include_in_schema=False, sync_to_thread=False)
def login_page(
    ctx: Ctx,
    next_page: Annotated[str | None, QueryParameter(name="next", max_length=2000)] = None,
    reason: Annotated[str | None, QueryParameter(max_length=300)] = None,
) -> Template:
    return _page(ctx, None, "login.html", next=_safe_next(ctx, next_page), error=reason, username="")


@post("/console/login", include_in_schema=False, status_code=HTTP_303_SEE_OTHER)
async def login_submit(
    ctx: Ctx,
    request: Request[Any, Any, Any],
    data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    target = _safe_next(ctx, data.next)
    if not same_origin(request.headers):
        return _page(ctx, None, "login.html", 403, next=target, error="cross-origin login refused", username="")
    if not data.username or not data.password:
        error = "enter your user name and password"
        return _page(ctx, None, "login.html", 400, next=target, error=error, username=data.username)
    address = request.client.host if request.client else "unknown"
    try:
        session = await in_thread(log_in, ctx, data.username, data.password, address)
    except HTTPException as e:
        retry = (e.headers or {}).get("Retry-After")
        error = f"{e.detail} ({retry} s)" if retry else e.detail
        return _page(ctx, None, "login.html", e.status_code, next=target, error=error, username=data.username)
    base = base_path(ctx)
    cookie = Cookie(
        key=COOKIE,
        value=session.token,
        path=f"{base}/",
        max_age=session.expires_in,
        httponly=True,
        samesite="strict",
        secure=(ctx.settings.public_url or "").startswith("https:"),
    )
    return Redirect(target, status_code=HTTP_303_SEE_OTHER, cookies=[cookie])


@dataclass
class CsrfForm:
    csrf: str = ""


@post("/console/logout", include_in_schema=False, status_code=HTTP_303_SEE_OTHER)
async def logout_submit(
    ctx: Ctx,
    request: Request[Any, Any, Any],
    authenticator: NamedDependency[Authenticator],
    data: Annotated[CsrfForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    viewer = await _viewer(request, authenticator)
    if not same_origin(request.headers) or not csrf_ok(viewer.token, getattr(data, CSRF_FIELD)):
        return _page(ctx, viewer, "error.html", 403, status=403, detail="log out from the console's own button")
    p = viewer.principal
    if p.expires_at is not None:
        await in_thread(end_session, ctx.db, p.name, p.token_id, p.expires_at + timedelta(seconds=LEEWAY_SECONDS))
    authenticator.standings.forget(p.name)
    base = base_path(ctx)
    gone = Cookie(key=COOKIE, value="", path=f"{base}/", max_age=0, httponly=True, samesite="strict")
    return Redirect(f"{base}/console/login", status_code=HTTP_303_SEE_OTHER, cookies=[gone])


# -- pages --------------------------------------------------------------------------------------------------------


@get("/console/commits", include_in_schema=False)
async def commits_page(
    ctx: Ctx,
    request: Request[Any, Any, Any],
    authenticator: NamedDependency[Authenticator],
    pipeline: Annotated[str | None, QueryParameter(max_length=500)] = None,
    status: Annotated[str | None, QueryParameter(max_length=16)] = None,
    author: Annotated[str | None, QueryParameter(max_length=255)] = None,
    sha: Annotated[str | None, QueryParameter(max_length=40)] = None,
    cursor: Annotated[str | None, QueryParameter(max_length=500)] = None,
) -> Template:
    viewer = await _viewer(request, authenticator)
    f = views.CommitFilter(
        pipeline or None, status or None, (author or "").strip() or None, (sha or "").strip() or None
    )
    page = await in_thread(views.timeline, ctx.db, f, cursor=cursor)
    sources = await in_thread(_problem_sources, ctx, page)
    given = (("pipeline", f.pipeline), ("status", f.status), ("author", f.author), ("sha", f.sha))
    query = {k: v for k, v in given if v}
    next_link = None
    if page.next_cursor:
        next_link = "?" + "&".join(f"{k}={quote(v)}" for k, v in {**query, "cursor": page.next_cursor}.items())
    return _page(
        ctx,
        viewer,
        "commits.html",
        page=page,
        filters=f,
        statuses=VALIDATIONS,
        next_link=next_link,
        first_page=bool(cursor),
        sources=sources,
        now=datetime.now(UTC),
    )


def _problem_sources(ctx: AppContext, page: views.Timeline) -> dict[str, list[source.ProblemSource]]:
    """The offending lines of every problem on the page, from each commit's own tree (invalid commits are few)."""
    if ctx.controller is None or not ctx.controller.repos:
        return {}
    repo = ctx.repo()
    return {c.sha: source.problem_sources(repo, c.sha, c.problems) for c in page.items if c.problems}


@get("/console/commits/{sha:str}", include_in_schema=False)
async def commit_page(
    ctx: Ctx,
    request: Request[Any, Any, Any],
    authenticator: NamedDependency[Authenticator],
    sha: Annotated[str, PathParameter(max_length=40)],
) -> Template:
    """One commit: its problems with the lines they point at, the files it changed against its parent, its runs."""
    viewer = await _viewer(request, authenticator)
    commit = await in_thread(commit_service.get_commit, ctx.db, sha)
    repo = ctx.repo()
    listed = [msgspec.to_builtins(p) for p in commit.problems]
    problems = await in_thread(source.problem_sources, repo, commit.sha, listed)
    changes = await in_thread(source.changes, repo, commit.sha)
    return _page(ctx, viewer, "commit.html", c=commit, problems=problems, changes=changes)


@get("/console/compare", include_in_schema=False)
async def compare_page(
    ctx: Ctx,
    request: Request[Any, Any, Any],
    authenticator: NamedDependency[Authenticator],
    a: Annotated[str, QueryParameter(max_length=100)],
    b: Annotated[str, QueryParameter(max_length=100)],
) -> Template:
    """Two runs side by side: parameters, results, tasks, and the files changed between their commits."""
    viewer = await _viewer(request, authenticator)
    now = datetime.now(UTC)
    view = await in_thread(views.compare, ctx.db, a.strip(), b.strip(), now)
    changes = None
    left, right = view.left.commit_sha, view.right.commit_sha
    if left and right and left != right and ctx.controller is not None and ctx.controller.repos:
        changes = await in_thread(source.changes, ctx.repo(), right, left)
    return _page(ctx, viewer, "compare.html", view=view, changes=changes)


@get("/console/runs/{run_id:str}", include_in_schema=False)
async def run_page(
    ctx: Ctx,
    request: Request[Any, Any, Any],
    authenticator: NamedDependency[Authenticator],
    run_id: Annotated[str, PathParameter(max_length=100)],
    status: Annotated[str | None, QueryParameter(max_length=20)] = None,
    prefix: Annotated[str | None, QueryParameter(max_length=63)] = None,
    cursor: Annotated[str | None, QueryParameter(max_length=100)] = None,
) -> Template:
    """A run: its tasks' counts, one page of its task table (filtered by status or name prefix), its DAG."""
    viewer = await _viewer(request, authenticator)
    now = datetime.now(UTC)
    tasks = views.TaskFilter(status or None, (prefix or "").strip() or None, cursor or None)
    view = await in_thread(views.run_view, ctx.db, run_id, now, tasks)
    repository = await in_thread(run_queries.run_repository_url, ctx.db, run_id)
    pull = None
    if view.run.pull_request is not None:
        pull = links.pull_request_link(repository, view.run.pr_provider, view.run.pull_request)
    return _page(
        ctx,
        viewer,
        "run.html",
        view=view,
        statuses=views.TASK_STATUSES,
        page_size=views.TASK_PAGE,
        run=view.run,
        dag=view.dag,
        now=now,
        duration=views.duration,
        repository=repository or _repository(ctx),
        pull=pull,
    )


@get("/console/pipelines", include_in_schema=False)
async def pipelines_page(
    ctx: Ctx, request: Request[Any, Any, Any], authenticator: NamedDependency[Authenticator]
) -> Template:
    viewer = await _viewer(request, authenticator)
    listed = await in_thread(pipeline_service.list_pipelines, ctx.repo(), None)
    rows = await in_thread(views.pipelines, ctx.db, listed)
    return _page(ctx, viewer, "pipelines.html", listed=listed, rows=rows, url_name=views.url_name)


@get("/console/pipelines/{name:str}", include_in_schema=False)
async def pipeline_page(
    ctx: Ctx,
    request: Request[Any, Any, Any],
    authenticator: NamedDependency[Authenticator],
    name: Annotated[str, PathParameter(max_length=500)],
) -> Template:
    viewer = await _viewer(request, authenticator)
    repo = ctx.repo()
    detail = await in_thread(pipeline_service.pipeline_detail, repo, name, None)
    try:
        main = await in_thread(pipeline_service.read_file, repo, name, MAIN_FILE, detail.sha)
    except FileMissing:  # a `main.yml.jinja2` pipeline: show the template
        main = await in_thread(pipeline_service.read_file, repo, name, f"{MAIN_FILE}.jinja2", detail.sha)
    runs = await in_thread(views.recent_runs, ctx.db, detail.name)
    return _page(
        ctx,
        viewer,
        "pipeline.html",
        p=detail,
        main=main,
        runs=runs,
        rate=views.success_rate(runs),
        url_name=views.url_name,
    )


@get("/console/gpus", include_in_schema=False)
async def gpus_page(
    ctx: Ctx,
    request: Request[Any, Any, Any],
    authenticator: NamedDependency[Authenticator],
    gpus: NamedDependency[GpuService],
) -> Template:
    viewer = await _viewer(request, authenticator)
    listed = await gpus.gpus(free=None, node=None, model=None, run=None)
    return _page(ctx, viewer, "gpus.html", gpus=listed, gib=views.gib)


def _repository(ctx: AppContext) -> str | None:
    """The followed repository's address as the settings name it (credentials never appear in settings URLs)."""
    repo = getattr(ctx.settings, "repo", None)
    return str(repo) if repo else None


# -- errors -------------------------------------------------------------------------------------------------------


def login_redirect(ctx: AppContext, request: Request[Any, Any, Any], e: LoginRequired) -> Response[Any]:
    base = base_path(ctx)
    here = f"{base}{request.url.path}" + (f"?{request.url.query}" if request.url.query else "")
    target = f"{base}/console/login?next={quote(here)}"
    if e.reason:
        target += f"&reason={quote(e.reason)}"
    return Redirect(target, status_code=HTTP_303_SEE_OTHER)


def error_page(ctx: AppContext, request: Request[Any, Any, Any], e: Exception) -> Response[Any]:
    """Errors on a page are pages too: the same message the API would give, with a way back."""
    failure = classify(e)
    if failure is None:
        log.exception("%s %s failed unexpectedly", request.method, request.url.path)
        status, detail = 500, "internal error; the server log has the details"
    else:
        status, detail = failure.status, failure.detail
    return _page(ctx, None, "error.html", status, status=status, detail=detail)


PAGES = [
    root,
    console_root,
    login_page,
    login_submit,
    logout_submit,
    commits_page,
    commit_page,
    compare_page,
    run_page,
    pipelines_page,
    pipeline_page,
    gpus_page,
]
