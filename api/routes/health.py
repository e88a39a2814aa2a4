"""Liveness and readiness, open to probes without a token."""

from __future__ import annotations

import sqlalchemy as sa
from litestar import Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from odin.api.context import AppContext
from odin.api.schemas import Health


@get("/healthz", exclude_from_auth=True, operation_id="healthz", summary="The process is alive", tags=["operations"])
async def healthz() -> Health:
    return Health(status="ok")


@get(
    "/readyz",
    exclude_from_auth=True,
    sync_to_thread=True,
    operation_id="readyz",
    summary="The database answers and the followed repositories are reachable",
    tags=["operations"],
)
def readyz(ctx: AppContext) -> Response[Health]:
    checks: dict[str, str] = {}
    try:
        with ctx.db.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:
        checks["database"] = f"unavailable: {type(e).__name__}"
    if ctx.controller is not None:
        for repo in ctx.controller.repos.values():
            outcome = repo.poller.last_outcome
            if outcome is not None and outcome.error is not None:
                checks[f"repo:{repo.name}"] = f"unavailable: {outcome.error.message}"
            else:
                checks[f"repo:{repo.name}"] = "ok" if outcome is not None else "not synced yet"
    ok = all(v in {"ok", "not synced yet"} for v in checks.values())
    return Response(
        Health(status="ok" if ok else "unavailable", checks=checks),
        status_code=HTTP_200_OK if ok else HTTP_503_SERVICE_UNAVAILABLE,
    )
