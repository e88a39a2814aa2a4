"""A big run over HTTP (issue 15 item 3): `GET /v1/runs/{id}` embeds the first 1,000 tasks and counts them all;
`GET /v1/runs/{id}/tasks` pages through the rest by keyset, filtered by status or name prefix; the Python client
follows the pages."""

from __future__ import annotations

import uuid

import pytest

from odin.api.client import OdinClient
from tests.api.conftest import Served
from tests.support.big_run import seed_fan_out

SHARDS = 1_200  # + prep + merge: 1,202 tasks, 120 failed


@pytest.fixture(scope="module")
def big(served: Served) -> tuple[str, list[str]]:
    run_id = f"big-{uuid.uuid4().hex[:8]}-1"
    return run_id, seed_fan_out(served.db_url, run_id, SHARDS)


def test_a_big_run_embeds_its_first_tasks_and_counts_them_all(served: Served, big: tuple[str, list[str]]) -> None:
    run_id, names = big
    res = served.get(f"/v1/runs/{run_id}")
    assert res.status_code == 200, res.text
    run = res.json()
    assert [t["name"] for t in run["tasks"]] == names[:1000]
    assert run["task_counts"] == {"succeeded": 1 + SHARDS - SHARDS // 10, "failed": SHARDS // 10, "skipped": 1}
    assert run["task_total"] == len(names)
    rest = served.get(f"/v1/runs/{run_id}/tasks", params={"cursor": run["tasks_next_cursor"], "limit": 1000}).json()
    assert [t["name"] for t in rest["items"]] == names[1000:]
    assert rest["next_cursor"] is None


def test_a_small_run_embeds_every_task_without_a_cursor(served: Served) -> None:
    run = served.start("ok")
    done = served.wait_run(run["id"])
    assert [t["name"] for t in done["tasks"]] and done["tasks_next_cursor"] is None
    assert done["task_total"] == len(done["tasks"]) == sum(done["task_counts"].values())


def test_pages_follow_each_other_without_repeats_or_gaps(served: Served, big: tuple[str, list[str]]) -> None:
    run_id, names = big
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 250, **({"cursor": cursor} if cursor else {})}
        page = served.get(f"/v1/runs/{run_id}/tasks", params=params).json()
        seen += [t["name"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names and pages == 5


def test_filters_by_status_and_name_prefix(served: Served, big: tuple[str, list[str]]) -> None:
    run_id, _ = big
    failed = served.get(f"/v1/runs/{run_id}/tasks", params={"status": "failed", "limit": 5}).json()
    assert [t["name"] for t in failed["items"]] == [f"shard-{i:05d}" for i in (7, 17, 27, 37, 47)]
    assert all(t["exit_code"] == 1 for t in failed["items"])
    assert failed["counts"]["failed"] == SHARDS // 10  # counts ignore the filters
    both = served.get(f"/v1/runs/{run_id}/tasks", params=[("status", "failed"), ("status", "skipped")]).json()
    assert len(both["items"]) == 100 and both["next_cursor"]
    prefixed = served.get(f"/v1/runs/{run_id}/tasks", params={"prefix": "shard-0110"}).json()
    assert [t["name"] for t in prefixed["items"]] == [f"shard-0110{i}" for i in range(10)]
    assert served.get(f"/v1/runs/{run_id}/tasks", params={"prefix": "shard_"}).json()["items"] == []


def test_bad_requests_say_what_to_fix(served: Served, big: tuple[str, list[str]]) -> None:
    run_id, _ = big
    res = served.get(f"/v1/runs/{run_id}/tasks", params={"status": "done"})
    assert res.status_code == 400 and "unknown status 'done'" in res.text
    res = served.get(f"/v1/runs/{run_id}/tasks", params={"cursor": "not-a-cursor"})
    assert res.status_code == 400 and "invalid cursor" in res.text
    assert served.get("/v1/runs/no-such-run/tasks").status_code == 404


def test_the_python_client_pages_through_tasks(served: Served, big: tuple[str, list[str]]) -> None:
    run_id, names = big
    client: OdinClient
    with served.client() as client:
        page = client.run_tasks(run_id, status=["failed"], limit=60)
        rest = client.run_tasks(run_id, status=["failed"], limit=60, cursor=page.next_cursor)
        assert len(page.items) == len(rest.items) == 60 and rest.next_cursor is None
        assert page.counts["failed"] == 120
        assert client.run(run_id).task_total == len(names)
