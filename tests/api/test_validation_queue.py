"""A flood of hostile `POST /v1/validate` requests is bounded: past the line, 503 with Retry-After at once, and the
other routes keep answering quickly meanwhile.

A real `odin serve` with one validation worker and a line of two; fifty hostile files are posted at once from
threads, while another thread times `/healthz`, `GET /v1/runs` and `GET /v1/runs/<id>` (a route served from the same
kind of thread pool the validations used to wait in) until the flood is answered.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from odin.api.validation_queue import ValidationBusy, ValidationQueue
from tests.api.conftest import Served, start_server
from tests.support.wait import wait_until

FLOOD = 50
SLOW_ANSWER = 10.0
"""Longest any probe of another route may take while the flood is in flight, and TYPICAL_ANSWER their median. On an
idle machine they take milliseconds; a shared machine at a load average of 25 gave a median of 50 ms and one spike of
3.6 s while fifty bodies arrived at once. Without the line, `GET /v1/runs/<id>` waited behind every validation."""
TYPICAL_ANSWER = 1.0


def hostile_main_yml(size: int) -> str:
    """A `main.yml` of unclosed `${`: linear to reject, but a large one keeps a worker busy for a while."""
    head = "name: hostile\ntasks:\n  - name: a\n    image: x\n    command: "
    return head + "${" * ((size - len(head)) // 2) + "\n"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = {"ODIN_VALIDATION_WORKERS": "1", "ODIN_VALIDATION_QUEUE": "2"}
    s = start_server(tmp_path, f"sqlite:///{tmp_path / 'odin.db'}", "sqlite", env)
    try:
        yield s
    finally:
        s.release_all()
        s.server.stop()


def test_a_flood_of_validations_gets_503_past_the_line_while_other_routes_answer(served: Served) -> None:
    run = served.start("ok")
    served.wait_run(run["id"])
    body = {"content": hostile_main_yml(600_000)}
    start = threading.Barrier(FLOOD)
    flood_done = threading.Event()

    def validate(_: int) -> httpx.Response:
        start.wait(60)
        return httpx.post(f"{served.url}/v1/validate", json=body, headers=served.headers(), timeout=300)

    probes: list[tuple[str, float, int]] = []

    def probe() -> None:
        with httpx.Client(base_url=served.url, headers=served.headers(), timeout=60) as client:
            while not flood_done.is_set():
                for path in ("/healthz", "/v1/runs", f"/v1/runs/{run['id']}"):
                    started = time.perf_counter()
                    status = client.get(path).status_code
                    probes.append((path, time.perf_counter() - started, status))

    with ThreadPoolExecutor(FLOOD + 1) as pool:
        prober = pool.submit(probe)
        try:
            answers = list(pool.map(validate, range(FLOOD)))
        finally:
            flood_done.set()
        prober.result()

    busy = [r for r in answers if r.status_code == 503]
    validated = [r for r in answers if r.status_code == 200]
    assert len(busy) + len(validated) == FLOOD, sorted({(r.status_code, r.text[:200]) for r in answers})
    assert busy, "every one of the flood's validations was queued: nothing bounds the line"
    assert validated, "the line refused even the validations it has room for"
    assert all(not r.json()["valid"] for r in validated)
    for r in busy:
        assert r.headers.get("retry-after", "").isdigit(), r.headers
        assert "ODIN_VALIDATION_QUEUE" in r.json()["detail"], r.text

    assert {path for path, _, _ in probes} == {"/healthz", "/v1/runs", f"/v1/runs/{run['id']}"}
    assert all(status == 200 for _, _, status in probes), probes
    slowest = max(probes, key=lambda p: p[1])
    assert slowest[1] < SLOW_ANSWER, f"{slowest[0]} took {slowest[1]:.2f} s during the flood"
    typical = statistics.median(seconds for _, seconds, _ in probes)
    assert typical < TYPICAL_ANSWER, f"the other routes took {typical:.2f} s (median) during the flood"
    # The line is free again once the flood is answered: a validation that fits is answered as before.
    fine = "name: fine\ntasks:\n  - {name: t, image: x, command: [echo, hi]}\n"
    r = served.post("/v1/validate", json={"content": fine})
    assert r.status_code == 200 and r.json()["valid"], r.text
    assert "Traceback" not in served.server.log()


def test_a_client_that_stops_waiting_does_not_free_the_thread_still_validating() -> None:
    """The slot is the thread's, not the request's: a flood of clients that disconnect must not get past the line."""
    line = ValidationQueue(running=1, waiting=0)
    release = threading.Event()

    async def scenario() -> None:
        first = asyncio.ensure_future(line.run(release.wait, 60))
        await asyncio.to_thread(wait_until, lambda: line.in_flight == 1, 10, message="the first call runs")
        with pytest.raises(ValidationBusy, match="ODIN_VALIDATION_QUEUE=0"):
            await line.run(lambda: True)
        first.cancel()  # its client went away; its thread validates on
        with pytest.raises(asyncio.CancelledError):
            await first
        assert line.in_flight == 1
        with pytest.raises(ValidationBusy):
            await line.run(lambda: True)
        release.set()
        await asyncio.to_thread(wait_until, lambda: line.in_flight == 0, 10, message="the slot is freed")
        assert await line.run(lambda: "validated") == "validated"

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        release.set()
        line.close()
