"""Starting, rerunning and cancelling runs on behalf of a user: shared by the HTTP routes and WebSocket commands."""

from __future__ import annotations

from collections.abc import Mapping

from odin.api.context import AppContext
from odin.api.schemas import RunSummary
from odin.api.services.errors import NotFound
from odin.api.services.runs import run_summary
from odin.controller.facade import RerunRequest, RunConflict, StartRequest
from odin.controller.store.runs import request_cancel
from odin.controller.vocabulary import Trigger

ParamInput = Mapping[str, str | int | float | bool]


def param_strings(params: ParamInput | None) -> dict[str, str]:
    """JSON numbers and booleans are accepted for convenience; pipelines declare parameters as typed strings."""
    out: dict[str, str] = {}
    for k, v in (params or {}).items():
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


def start(
    ctx: AppContext,
    *,
    by: str,
    pipeline: str,
    ref: str | None,
    params: ParamInput | None,
    parallelism: int | None = None,
    no_cache: bool = False,
    repository: str | None = None,
) -> RunSummary:
    """`repository`: a followed repository's name (None: the default one)."""
    controller = ctx.require_controller()
    if repository is not None and not any(r.name == repository for r in controller.repos.values()):
        raise NotFound(f"no followed repository named {repository!r} (odinctl repos list shows them)")
    created = controller.start_run(
        StartRequest(
            pipeline=pipeline,
            ref=ref,
            params=param_strings(params),
            trigger=Trigger.API,
            by=by,
            parallelism=parallelism,
            no_cache=no_cache,
        ),
        repository,
    )
    return run_summary(ctx.db, created.run_id)


def rerun(
    ctx: AppContext,
    *,
    by: str,
    run_id: str,
    latest: bool = False,
    failed_only: bool = False,
    task: str | None = None,
    params: ParamInput | None = None,
    no_cache: bool = False,
) -> RunSummary:
    created = ctx.require_controller().rerun(
        RerunRequest(
            run_id=run_id,
            latest=latest,
            failed_only=failed_only,
            task=task,
            params=param_strings(params) if params is not None else None,
            by=by,
            no_cache=no_cache,
        )
    )
    return run_summary(ctx.db, created.run_id)


def cancel(ctx: AppContext, *, by: str, run_id: str) -> RunSummary:
    """Flag the run for cancellation (the engine acts on it); 409 when it already finished."""
    run = run_summary(ctx.db, run_id)
    flagged = ctx.controller.cancel(run_id, by=by) if ctx.controller else request_cancel(ctx.db, run_id, by=by)
    if not flagged:
        current = run_summary(ctx.db, run_id)
        raise RunConflict(f"run {run_id} already finished ({current.status}); there is nothing to cancel")
    return run
