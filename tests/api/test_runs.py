"""Runs over real HTTP: found by commit and every other filter, read, started, rerun, cancelled; logs and events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.conftest import Served
from tests.support.wait import wait_until


def ids(page: dict[str, Any]) -> list[str]:
    return [r["id"] for r in page["items"]]


def test_start_records_trigger_user_params_and_commit(served: Served) -> None:
    run = served.start("ok", params={"who": "you", "n": 3})
    assert run["trigger"] == "api" and run["triggered_by"] == "admin"
    assert run["commit_sha"] == served.remote.head and run["branch"] == "main"
    done = served.wait_run(run["id"])
    assert done["status"] == "succeeded", done
    assert done["params"] == {"who": "you", "n": "3"}
    assert [t["name"] for t in done["tasks"]] == ["prep", "train", "report"]
    assert done["spec"]["name"] == "ok" and done["work_tree"]
    r = served.post("/v1/runs", json={"pipeline": "ok"})
    assert r.headers["location"] == f"/v1/runs/{r.json()['id']}"
    served.wait_run(r.json()["id"])


def test_start_at_a_tag_or_sha_prefix(served: Served) -> None:
    sha = served.remote.head
    served.remote.tag("v-start", sha)
    by_tag = served.start("ok", ref="v-start")
    by_prefix = served.start("ok", ref=sha[:9])
    assert by_tag["commit_sha"] == by_prefix["commit_sha"] == sha
    assert by_tag["branch"] is None
    served.wait_run(by_tag["id"])
    served.wait_run(by_prefix["id"])


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"pipeline": "nope"}, 404, "no pipeline 'nope'"),
        ({"pipeline": "ok", "ref": "no-such-branch"}, 404, "no branch, tag or commit"),
        ({"pipeline": "ok", "params": {"bogus": 1}}, 422, "bogus"),
        ({"pipeline": "ok", "params": {"n": "many"}}, 422, "n"),
        ({"pipeline": "ok", "paralellism": 2}, 400, "unknown field"),
        ({"pipeline": 7}, 400, "Expected `str`"),
        ({}, 400, "pipeline"),
    ],
)
def test_start_rejections_say_what_is_wrong(served: Served, body: dict[str, Any], status: int, words: str) -> None:
    r = served.post("/v1/runs", json=body)
    assert r.status_code == status, r.text
    assert words in r.text
    assert r.json()["status_code"] == status


def test_malformed_json_is_400(served: Served) -> None:
    r = served.post("/v1/runs", content=b'{"pipeline": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["detail"]


def test_find_runs_by_commit_prefix_and_filters(served: Served) -> None:
    sha = served.remote.commit({"ok/data.txt": "v2"}, message="New data")
    auto = wait_until(lambda: served.get("/v1/runs", params={"commit": sha}).json()["items"], 30)
    assert [r["trigger"] for r in auto] == ["poll"] and auto[0]["pipeline"] == "ok"
    manual = served.start("ok", ref=sha)
    for run_id in (auto[0]["id"], manual["id"]):
        served.wait_run(run_id)
    for prefix in (sha, sha[:7], sha[:12].upper()):
        assert set(ids(served.get("/v1/runs", params={"commit": prefix}).json())) == {auto[0]["id"], manual["id"]}
    assert ids(served.get("/v1/runs", params={"commit": sha, "trigger": "api"}).json()) == [manual["id"]]
    assert ids(served.get("/v1/runs", params={"commit": sha, "trigger": ["api", "poll"]}).json())[0] == manual["id"]
    assert ids(served.get("/v1/runs", params={"commit": sha, "status": "failed"}).json()) == []
    assert len(ids(served.get("/v1/runs", params={"commit": sha, "status": ["failed", "succeeded"]}).json())) == 2
    assert auto[0]["id"] in ids(served.get("/v1/runs", params={"pipeline": "ok", "branch": "main"}).json())
    assert ids(served.get("/v1/runs", params={"pipeline": "nope"}).json()) == []
    assert manual["id"] in ids(served.get("/v1/runs", params={"triggered_by": "admin", "limit": 500}).json())
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert ids(served.get("/v1/runs", params={"created_after": future}).json()) == []
    assert manual["id"] in ids(served.get("/v1/runs", params={"created_before": future, "limit": 500}).json())


def test_pagination_walks_every_run_once(served: Served) -> None:
    for _ in range(3):
        served.wait_run(served.start("ok")["id"])
    everything = ids(served.get("/v1/runs", params={"limit": 500}).json())
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = served.get("/v1/runs", params=params).json()
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == everything and len(seen) >= 3


@pytest.mark.parametrize(
    "params",
    [
        {"commit": "xyz"},
        {"commit": "' OR 1=1 --"},
        {"commit": "abc"},
        {"commit": "a" * 41},
        {"status": "running'; DROP TABLE runs; --"},
        {"trigger": "nope"},
        {"limit": 0},
        {"limit": 501},
        {"limit": "ten"},
        {"cursor": "not-a-cursor"},
        {"cursor": "MjAyNC0wMS0wMQ"},
        {"created_after": "yesterday"},
        {"created_after": "2024-01-01T00:00:00"},
    ],
)
def test_bad_filters_are_400_never_500(served: Served, params: dict[str, Any]) -> None:
    r = served.get("/v1/runs", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["detail"]


def test_unknown_query_parameters_are_400_not_ignored(served: Served) -> None:
    r = served.get("/v1/runs", params={"comit": "abcdef0"})
    assert r.status_code == 400 and "unknown query parameter 'comit'" in r.json()["detail"]
    assert "commit" in r.json()["detail"], "the answer lists what the route takes"


def test_sql_looking_values_are_just_values(served: Served) -> None:
    for value in ("' OR '1'='1", "ok'; DROP TABLE runs; --", "ok%", "_"):
        assert served.get("/v1/runs", params={"pipeline": value}).json() == {"items": [], "next_cursor": None}
    assert served.get("/v1/runs").status_code == 200


def test_unknown_run_is_404(served: Served) -> None:
    for path in ("/v1/runs/nope", "/v1/runs/nope/events", "/v1/runs/nope/tasks/x/logs", "/v1/runs/nope/tasks/x/events"):
        r = served.get(path)
        assert r.status_code == 404 and "nope" in r.json()["detail"], path
    assert served.post("/v1/runs/nope/rerun", json={}).status_code == 404
    assert served.post("/v1/runs/nope/cancel").status_code == 404
    run = served.wait_run(served.start("ok")["id"])
    r = served.get(f"/v1/runs/{run['id']}/tasks/nope/logs")
    assert r.status_code == 404 and "has no task 'nope'" in r.text


def test_logs_tail_and_follow_and_events(served: Served) -> None:
    run = served.start("gate")
    run_id = run["id"]
    with httpx.stream(
        "GET", f"{served.url}/v1/runs/{run_id}/tasks/after/logs", params={"follow": "true"}, headers=served.headers()
    ) as stream:
        assert stream.status_code == 200
        served.release(run_id)
        followed = "".join(stream.iter_text())
    assert followed == "after\n"
    served.wait_run(run_id)
    assert served.get(f"/v1/runs/{run_id}/tasks/hold/logs").text == "released\n"
    assert served.get(f"/v1/runs/{run_id}/tasks/hold/logs", params={"tail": 0}).text == ""
    assert served.get(f"/v1/runs/{run_id}/tasks/hold/logs", params={"attempt": 1}).text == "released\n"
    events = served.get(f"/v1/runs/{run_id}/events").json()["items"]
    kinds = [(e["kind"], e["task"], e["data"].get("status")) for e in events]
    assert kinds[0] == ("run.created", None, None)
    assert ("task.status", "hold", "succeeded") in kinds and kinds[-1] == ("run.status", None, "succeeded")
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    page = served.get(f"/v1/runs/{run_id}/events", params={"since": events[2]["id"], "limit": 2}).json()
    assert [e["id"] for e in page["items"]] == [events[3]["id"], events[4]["id"]]
    assert page["next_since"] == events[4]["id"]
    task_events = served.get(f"/v1/runs/{run_id}/tasks/hold/events").json()
    assert {e["task"] for e in task_events["events"]} == {"hold"} and task_events["platform"] == []


def test_cancel_stops_a_run_and_a_finished_run_cannot_be_cancelled(served: Served) -> None:
    run = served.start("gate")
    wait_until(lambda: served.get(f"/v1/runs/{run['id']}").json()["tasks"][0]["status"] == "running", 30)
    r = served.post(f"/v1/runs/{run['id']}/cancel")
    assert r.status_code == 202 and r.json()["id"] == run["id"]
    done = served.wait_run(run["id"])
    assert done["status"] == "cancelled"
    assert [t["status"] for t in done["tasks"]] == ["cancelled", "skipped"]
    again = served.post(f"/v1/runs/{run['id']}/cancel")
    assert again.status_code == 409 and "already finished (cancelled)" in again.json()["detail"]
    events = served.get(f"/v1/runs/{run['id']}/events").json()["items"]
    cancel = next(e for e in events if e["kind"] == "run.cancel_requested")
    assert cancel["data"] == {"by": "admin"} and cancel["commit_sha"] == run["commit_sha"]


def test_rerun_of_a_running_run_is_409(served: Served) -> None:
    run = served.start("gate")
    r = served.post(f"/v1/runs/{run['id']}/rerun", json={})
    assert r.status_code == 409 and "still" in r.json()["detail"]
    served.release(run["id"])
    served.wait_run(run["id"])


def test_rerun_defaults_to_the_original_commit_and_params(served: Served) -> None:
    first = served.wait_run(served.start("ok", params={"who": "me"})["id"])
    newer = served.remote.commit({"ok/notes.md": "moved on"}, message="Move on")
    wait_until(lambda: served.get("/v1/runs", params={"commit": newer}).json()["items"], 30)
    rerun = served.post(f"/v1/runs/{first['id']}/rerun").json()
    done = served.wait_run(rerun["id"])
    assert done["status"] == "succeeded"
    assert (done["commit_sha"], done["params"], done["work_tree"]) == (
        first["commit_sha"],
        first["params"],
        first["work_tree"],
    )
    assert (done["trigger"], done["triggered_by"], done["parent_run"]) == ("rerun", "admin", first["id"])
    assert done["run_path_id"] is None, "a full rerun writes its own outputs"
    [cond] = done["conditions"]
    assert (cond["type"], cond["reason"], cond["parent_run"]) == ("Rerun", "OriginalCommit", first["id"])

    latest = served.post(f"/v1/runs/{first['id']}/rerun", json={"latest": True, "params": {"n": 5}}).json()
    done = served.wait_run(latest["id"])
    assert done["commit_sha"] == newer and done["params"] == {"who": "me", "n": "5"}
    assert done["conditions"][0]["reason"] == "LatestCommit"
    assert ids(served.get("/v1/runs", params={"parent_run": first["id"]}).json()) == [latest["id"], rerun["id"]]


def test_rerun_failed_only_reuses_succeeded_tasks_and_their_outputs(served: Served) -> None:
    (served.marks / "flaky-ok").unlink(missing_ok=True)
    (served.marks / "flaky-a").unlink(missing_ok=True)
    failed = served.wait_run(served.start("flaky")["id"])
    assert failed["status"] == "failed"
    assert {t["name"]: t["status"] for t in failed["tasks"]} == {
        "a": "succeeded",
        "b": "failed",
        "c": "skipped",
        "side": "succeeded",
    }
    (served.marks / "flaky-ok").touch()
    rerun = served.post(f"/v1/runs/{failed['id']}/rerun", json={"failed_only": True}).json()
    done = served.wait_run(rerun["id"])
    assert done["status"] == "succeeded", done
    tasks = {t["name"]: t for t in done["tasks"]}
    assert (tasks["a"]["reason"], tasks["a"]["message"]) == ("Reused", f"reused from {failed['id']}")
    assert tasks["side"]["reason"] == "Reused"
    assert tasks["b"]["status"] == tasks["c"]["status"] == "succeeded"
    assert (served.marks / "flaky-a").read_text() == "a\n", "task a ran once: the rerun reused it"
    assert done["run_path_id"] == failed["id"], "b read a's output from the parent's RUN_PATH"
    assert served.get(f"/v1/runs/{done['id']}/tasks/a/logs").status_code == 200
    r = served.post(f"/v1/runs/{done['id']}/rerun", json={"failed_only": True})
    assert r.status_code == 409 and "nothing to rerun" in r.json()["detail"]


def test_rerun_one_task_and_its_descendants(served: Served) -> None:
    (served.marks / "flaky-ok").touch()
    parent = served.wait_run(served.start("flaky")["id"])
    assert parent["status"] == "succeeded"
    rerun = served.post(f"/v1/runs/{parent['id']}/rerun", json={"task": "b"}).json()
    done = served.wait_run(rerun["id"])
    tasks = {t["name"]: (t["status"], t["reason"]) for t in done["tasks"]}
    assert tasks["a"] == ("succeeded", "Reused") and tasks["side"] == ("succeeded", "Reused")
    assert tasks["b"][0] == tasks["c"][0] == "succeeded" and tasks["b"][1] != "Reused"
    assert done["run_path_id"] == parent["id"]

    (served.marks / "flaky-ok").unlink()
    broken = served.wait_run(served.start("flaky")["id"])
    r = served.post(f"/v1/runs/{broken['id']}/rerun", json={"task": "c"})
    assert r.status_code == 409 and "needs the outputs of b" in r.json()["detail"]
    r = served.post(f"/v1/runs/{broken['id']}/rerun", json={"task": "nope"})
    assert r.status_code == 422 and "no task 'nope'" in r.json()["detail"]
    r = served.post(f"/v1/runs/{broken['id']}/rerun", json={"task": "b", "failed_only": True})
    assert r.status_code == 422
    r = served.post(f"/v1/runs/{broken['id']}/rerun", json={"latest": True, "failed_only": True})
    assert r.status_code == 422 and "own commit" in r.json()["detail"]


def test_a_run_shows_what_its_tasks_produced(served: Served) -> None:
    run = served.wait_run(served.start("made")["id"])
    assert run["status"] == "succeeded", run
    tasks = {t["name"]: t for t in served.get(f"/v1/runs/{run['id']}").json()["tasks"]}
    assert tasks["train"]["results"] == {"acc": 0.9}
    model = tasks["train"]["artifacts"]["model"]
    assert (model["type"], model["size"], model["path"]) == ("file", 1, "model")
    assert model["digest"].startswith("sha256:") and model["location"].endswith("/artifacts/model")
    assert (tasks["use"]["results"], tasks["use"]["artifacts"]) == ({}, {})
    assert served.get(f"/v1/runs/{run['id']}/tasks/use/logs").text == "0.9\n"


CACHED_PIPELINE = """
tasks:
  - name: make
    image: busybox
    cache: true
    command: [sh, -c, 'echo 7 > "$RESULTS_PATH/n"']
    outputs: {results: [n]}
"""


def test_cached_tasks_over_http_and_no_cache_on_start_and_rerun(served: Served) -> None:
    """A second run reuses the cached task (reason `Cached`, its key and results in the API); `no_cache` on
    `POST /v1/runs` and on a rerun runs it again, still recording the key."""
    sha = served.remote.commit({"cached/main.yml": CACHED_PIPELINE}, message="Add a cached pipeline")
    # The push itself starts the first run (the server follows the repository).
    [auto] = wait_until(lambda: served.get("/v1/runs", params={"commit": sha}).json()["items"], 30)
    first = served.wait_run(auto["id"])
    [made] = first["tasks"]
    assert made["reason"] != "Cached" and len(made["cache_key"]) == 64 and made["results"] == {"n": 7}

    second = served.wait_run(served.start("cached", ref=sha)["id"])
    [hit] = second["tasks"]
    assert (hit["status"], hit["reason"], hit["cache_key"], hit["results"]) == (
        "succeeded", "Cached", made["cache_key"], {"n": 7},
    )  # fmt: skip
    assert hit["message"] == f"cached from run {first['id']} (commit {sha[:12]})" and second["no_cache"] is False

    bypassed = served.wait_run(served.start("cached", ref=sha, no_cache=True)["id"])
    assert bypassed["no_cache"] is True and bypassed["tasks"][0]["reason"] != "Cached"
    rerun = served.post(f"/v1/runs/{first['id']}/rerun", json={"no_cache": True}).json()
    again = served.wait_run(rerun["id"])
    assert again["no_cache"] is True and again["tasks"][0]["reason"] != "Cached"
    assert again["tasks"][0]["cache_key"] == made["cache_key"]
    plain = served.wait_run(served.post(f"/v1/runs/{first['id']}/rerun").json()["id"])
    assert plain["tasks"][0]["reason"] == "Cached"


def test_a_run_beyond_its_pipelines_concurrency_is_queued_visibly_and_starts_when_the_slot_frees(
    served: Served,
) -> None:
    first = served.start("serial")
    second = served.start("serial")
    assert (second["status"], second["reason"]) == ("queued", "ConcurrencyLimit"), second
    assert second["message"] == "waiting: 1 of 1 run(s) of pipeline serial active"
    listed = served.get("/v1/runs", params={"status": "queued", "pipeline": "serial"}).json()
    assert ids(listed) == [second["id"]] and listed["items"][0]["reason"] == "ConcurrencyLimit"
    served.release(first["id"])
    assert served.wait_run(first["id"])["status"] == "succeeded"
    wait_until(lambda: served.get(f"/v1/runs/{second['id']}").json()["status"] in ("pending", "running"), 30)
    assert served.get(f"/v1/runs/{second['id']}").json()["reason"] is None, "no longer waiting"
    served.release(second["id"])
    assert served.wait_run(second["id"])["status"] == "succeeded"
    events = served.get(f"/v1/runs/{second['id']}/events").json()["items"]
    assert [e["data"]["status"] for e in events if e["kind"] == "run.status"][:2] == ["queued", "pending"]
    listing = {p["name"]: p for p in served.get("/v1/pipelines").json()["items"]}
    assert listing["serial"]["concurrency"] == {"limit": 1, "policy": "queue"} and listing["serial"]["priority"] == 0
    assert listing["ok"]["concurrency"] is None
