"""Health, readiness, metrics, body limits and request logs of a real server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from odin.controller.metrics import WEBHOOK_DELIVERIES
from tests.api.conftest import PASSWORD, Served
from tests.support.server import BIN


def metrics(served: Served) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = httpx.get(f"{served.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_health_and_readiness_are_open(served: Served) -> None:
    assert httpx.get(f"{served.url}/healthz").json() == {"status": "ok", "checks": {}}
    ready = httpx.get(f"{served.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "repo:default": "ok"}


def test_metrics_count_runs_by_status_task_durations_and_sync_lag(served: Served) -> None:
    run = served.wait_run(served.start("ok")["id"])
    assert run["status"] == "succeeded"
    m = metrics(served)
    runs = {labels["status"]: value for labels, value in m["odin_runs"]}
    assert runs["succeeded"] >= 1 and set(runs) >= {"pending", "running", "failed", "cancelled", "error"}
    assert any(labels == {"status": "succeeded"} and v >= 3 for labels, v in m["odin_task_duration_seconds_count"])
    [(labels, lag)] = m["odin_sync_lag_seconds"]
    assert labels == {"repo": "default"} and 0 <= lag < 60
    assert m["odin_repo_ready"] == [({"repo": "default"}, 1.0)]
    assert m["odin_leader"] == [({}, 1.0)] and m["odin_store_up"] == [({}, 1.0)]
    routes = {(labels["route"], labels["status"]) for labels, _ in m["odin_http_requests_total"]}
    assert ("/v1/runs/{run_id}", "200") in routes
    assert "odin_http_request_duration_seconds_bucket" in m
    assert "odin_websocket_connections" in m
    # The webhooks component counts deliveries on this counter (odin.controller.metrics.WEBHOOK_DELIVERIES).
    assert WEBHOOK_DELIVERIES._name == "odin_webhook_deliveries"
    assert "# TYPE odin_webhook_deliveries_total counter" in httpx.get(f"{served.url}/metrics").text


def test_oversize_bodies_are_413(served: Served) -> None:
    big = {"content": "x" * (1_048_576 + 10)}
    r = served.post("/v1/validate", json=big)
    assert r.status_code == 413, r.text
    assert r.json()["status_code"] == 413
    assert served.post("/v1/validate", json={"content": "x" * 1000}).status_code == 200


def test_request_logs_are_structured_and_never_carry_secrets(served: Served) -> None:
    api = served.post("/v1/auth/tokens", json={"name": "log-check"}).json()["token"]
    served.get("/v1/runs", token=api)
    served.get("/v1/runs", token="odin_" + "B" * 43)
    httpx.post(f"{served.url}/v1/auth/token", json={"username": "admin", "password": "wrong-password-value"})
    log = served.server.log()
    assert "GET /v1/runs 200" in log and "user=admin" in log and "GET /v1/runs 401" in log
    for secret in (served.admin_token, api, "odin_" + "B" * 43, PASSWORD, "wrong-password-value", "Bearer"):
        assert secret not in log


def test_the_openapi_document_is_served_and_complete(served: Served) -> None:
    doc = httpx.get(f"{served.url}/schema/openapi.json").json()
    operations = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert {
        ("POST", "/v1/auth/token"),
        ("GET", "/v1/runs"),
        ("POST", "/v1/runs/{run_id}/rerun"),
        ("PUT", "/v1/pipelines/{name}/files/{path}"),
        ("GET", "/v1/commits/{sha}"),
        ("GET", "/metrics"),
    } <= operations
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("operationId") and op.get("summary"), (method, path)
            if path.startswith("/v1/") and path != "/v1/ws/schema":  # the AsyncAPI document is public, like this one
                assert {"400", "401"} <= op["responses"].keys(), (method, path)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert json.dumps(doc).count("password_hash") == 0 and json.dumps(doc).count("token_hash") == 0


def test_odin_openapi_prints_the_served_contract(served: Served, tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "odin"), "openapi"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == httpx.get(f"{served.url}/schema/openapi.json").json()


def test_json_request_logs_carry_the_fields(tmp_path: Path) -> None:
    from tests.api.conftest import start_server

    s = start_server(tmp_path, f"sqlite:///{tmp_path / 'odin.db'}", "sqlite", {"ODIN_LOG_FORMAT": "json"})
    try:
        s.get("/v1/runs", params={"limit": 3})
    finally:
        s.server.stop()
    lines = [json.loads(line) for line in s.server.log().splitlines() if line.startswith("{")]
    [entry] = [e for e in lines if e.get("http", {}).get("path") == "/v1/runs"]
    assert entry["logger"] == "odin.api.access" and entry["level"] == "INFO"
    assert entry["http"]["status"] == 200 and entry["http"]["user"] == "admin" and entry["http"]["route"] == "/v1/runs"
    assert s.admin_token not in s.server.log()
