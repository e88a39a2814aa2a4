"""Liveness, readiness and metrics, open to probes and scrapers without a token."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from odin.api.deps import Ctx
from odin.api.metrics import CONTENT_TYPE, Metrics
from odin.api.schemas import Health
from odin.controller.store.health import ping

# `security: [{}]` says "no token needed" in OpenAPI (an empty list would inherit the API-wide bearer requirement).
OPEN: dict[str, object] = {"exclude_from_auth": True, "security": [{}], "tags": ["operations"]}


@get("/healthz", operation_id="healthz", summary="The process is alive", sync_to_thread=False, **OPEN)  # type: ignore[arg-type]
def healthz() -> Health:
    return Health(status="ok")


@get(
    "/readyz",
    sync_to_thread=True,
    operation_id="readyz",
    summary="The database answers and the followed repositories are reachable",
    responses={
        503: ResponseSpec(data_container=Health, description="Not ready: see `checks`", generate_examples=False)
    },
    **OPEN,  # type: ignore[arg-type]
)
def readyz(ctx: Ctx) -> Response[Health]:
    checks: dict[str, str] = {}
    informative: set[str] = set()  # reported, but not what readiness hangs on
    error = ping(ctx.db)
    checks["database"] = "ok" if error is None else f"unavailable: {error}"
    if ctx.controller is not None:
        for repo in ctx.controller.repos.values():
            outcome = repo.poller.last_outcome
            if outcome is not None and outcome.error is not None:
                checks[f"repo:{repo.name}"] = f"unavailable: {outcome.error.message}"
            else:
                checks[f"repo:{repo.name}"] = "ok" if outcome is not None else "not synced yet"
            if repo.origin == "api":
                # A registered repository someone mistyped must not take the API out of service: its condition
                # says what is wrong (GET /v1/repos/{name}); ODIN_REPO's repository still decides readiness.
                informative.add(f"repo:{repo.name}")
    ok = all(v in {"ok", "not synced yet"} for k, v in checks.items() if k not in informative)
    return Response(
        Health(status="ok" if ok else "unavailable", checks=checks),
        status_code=HTTP_200_OK if ok else HTTP_503_SERVICE_UNAVAILABLE,
    )


@get(
    "/metrics",
    sync_to_thread=True,
    operation_id="metrics",
    summary="Prometheus metrics: runs by status, task durations, sync lag, webhook deliveries, HTTP requests",
    media_type=CONTENT_TYPE,
    responses={
        200: ResponseSpec(
            data_container=str, media_type=CONTENT_TYPE, description="Prometheus text format", generate_examples=False
        )
    },
    **OPEN,  # type: ignore[arg-type]
)
def metrics(metrics: NamedDependency[Metrics]) -> Response[bytes]:
    return Response(metrics.render(), media_type=CONTENT_TYPE)
