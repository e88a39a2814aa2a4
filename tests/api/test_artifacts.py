"""Finding what a run produced, over real HTTP against a real `odin serve` (SQLite and Postgres): listing artifacts,
downloading them with and without ranges, directories as tar streams and file by file, results per commit, and the
odinctl commands (`artifacts`, `get`, `results`) as real subprocesses."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.conftest import PASSWORD, Served
from tests.support.server import odinctl
from tests.support.wait import wait_until

MODEL = b"abcdefghij\n" * 27273  # what `yes abcdefghij | head -c 300003` writes: 300,003 bytes
SIZE = len(MODEL)


def pipeline(acc: str) -> str:
    train = (
        "yes abcdefghij | head -c 300003 > $OUTPUT_PATH/model.bin; "
        "mkdir -p $OUTPUT_PATH/report/sub; echo hi > $OUTPUT_PATH/report/a.txt; "
        "printf deep > $OUTPUT_PATH/report/sub/b.txt; ln -s /etc/passwd $OUTPUT_PATH/report/link; "
        f"echo {acc} > $RESULTS_PATH/acc; echo '{{\"loss\": 0.25}}' > $RESULTS_PATH/results.json"
    )
    return (
        "name: produce\n"
        "tasks:\n"
        "  - name: train\n"
        "    image: busybox\n"
        f"    command: [sh, -c, {json.dumps(train)}]\n"
        "    outputs: {artifacts: [{name: model, path: model.bin}, report], results: [acc, loss]}\n"
        "  - name: eval\n"
        "    image: busybox\n"
        "    command: [sh, -c, 'echo 0.5 > $RESULTS_PATH/acc']\n"
        "    outputs: {results: [acc]}\n"
        "    depends: train\n"
    )


@dataclass(frozen=True)
class Produced:
    first: dict[str, Any]  # the run at the first commit (acc 0.91)
    second: dict[str, Any]  # the run at the second commit (acc 0.95)


def automatic_run(served: Served, sha: str) -> dict[str, Any]:
    """The run the server starts by itself for a pushed commit that changed the pipeline (one per commit)."""

    def found() -> str | None:
        items = served.get("/v1/runs", params={"commit": sha, "pipeline": "produce"}).json()["items"]
        return str(items[0]["id"]) if items else None

    return served.wait_run(wait_until(found, 60, message=f"a run of produce at {sha[:7]}"))


@pytest.fixture(scope="module")
def produced(served: Served) -> Produced:
    """Two commits of the pipeline, each run once by the server itself (the poll sees the push), so the results
    across commits are exactly these two runs."""
    first = automatic_run(served, served.remote.commit({"produce/main.yml": pipeline("0.91")}, message="Add produce"))
    second = automatic_run(served, served.remote.commit({"produce/main.yml": pipeline("0.95")}, message="Better"))
    assert (first["status"], second["status"]) == ("succeeded", "succeeded"), (first, second)
    assert first["commit_sha"] != second["commit_sha"]
    return Produced(first, second)


@pytest.fixture(scope="module")
def viewer(served: Served) -> str:
    return served.user("art-viewer", "viewer")


@pytest.fixture(scope="module")
def config(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("odinctl-art")
    res = odinctl("login", "--password-stdin", server=served.server, config_dir=directory, stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    return directory


def art(run: dict[str, Any], rest: str = "") -> str:
    return f"/v1/runs/{run['id']}/artifacts{rest}"


def test_list_gives_every_artifact_with_size_digest_and_url(served: Served, produced: Produced, viewer: str) -> None:
    r = served.get(art(produced.second), token=viewer)  # a viewer may read what runs produced
    assert r.status_code == 200, r.text
    items = {(a["task"], a["name"]): a for a in r.json()["items"]}
    assert set(items) == {("train", "model"), ("train", "report")}
    model, report = items["train", "model"], items["train", "report"]
    assert (model["type"], model["size"], model["path"]) == ("file", SIZE, "model.bin")
    assert model["digest"] == "sha256:" + hashlib.sha256(MODEL).hexdigest()
    assert model["url"] == art(produced.second, "/train/model") and model["files_url"] is None
    assert (report["type"], report["size"]) == ("directory", len(b"hi\n") + len(b"deep"))
    assert report["files_url"] == art(produced.second, "/train/report/files")


def test_results_are_in_the_run(served: Served, produced: Produced) -> None:
    tasks = {t["name"]: t for t in served.get(f"/v1/runs/{produced.second['id']}").json()["tasks"]}
    assert tasks["train"]["results"] == {"acc": 0.95, "loss": 0.25}
    assert tasks["eval"]["results"] == {"acc": 0.5}


def test_a_file_downloads_whole_with_validators(served: Served, produced: Produced) -> None:
    r = served.get(art(produced.second, "/train/model"))
    assert r.status_code == 200 and r.content == MODEL
    digest = "sha256:" + hashlib.sha256(MODEL).hexdigest()
    assert r.headers["etag"] == f'"{digest}"'
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-length"] == str(SIZE)
    assert "model" in r.headers["content-disposition"]


@pytest.mark.parametrize(
    ("asked", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-", 100, SIZE - 1),
        ("bytes=-5", SIZE - 5, SIZE - 1),
        (f"bytes={SIZE - 1}-{SIZE + 1000}", SIZE - 1, SIZE - 1),  # an end past the last byte is cut to it
    ],
)
def test_a_range_answers_206_with_exactly_those_bytes(
    served: Served, produced: Produced, asked: str, start: int, end: int
) -> None:
    r = served.get(art(produced.second, "/train/model"), headers={"Range": asked})
    assert r.status_code == 206, r.text
    assert r.content == MODEL[start : end + 1]
    assert r.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert r.headers["content-length"] == str(end - start + 1)


def test_bad_ranges(served: Served, produced: Produced) -> None:
    url = art(produced.second, "/train/model")
    r = served.get(url, headers={"Range": f"bytes={SIZE}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{SIZE}"
    assert "past the end" in r.json()["detail"]
    for ignored in ("bytes=9-2", "bytes=0-1,5-6", "items=0-3", "bytes=x-y"):  # RFC 9110: ignore, send it whole
        r = served.get(url, headers={"Range": ignored})
        assert (r.status_code, len(r.content)) == (200, SIZE), ignored
    stale = served.get(url, headers={"Range": "bytes=0-9", "If-Range": '"sha256:other"'})
    assert (stale.status_code, len(stale.content)) == (200, SIZE), "If-Range of other bytes: the whole file"
    fresh = served.get(url, headers={"Range": "bytes=0-9", "If-Range": stale.headers["etag"]})
    assert (fresh.status_code, fresh.content) == (206, MODEL[:10])


def test_unknown_run_task_or_artifact_is_a_404_that_says_what_exists(served: Served, produced: Produced) -> None:
    run = produced.second
    r = served.get("/v1/runs/no-such-run/artifacts")
    assert r.status_code == 404 and "no run 'no-such-run'" in r.json()["detail"]
    r = served.get(art(run, "/nope/model"))
    assert r.status_code == 404 and "no task 'nope'" in r.json()["detail"] and "train" in r.json()["detail"]
    r = served.get(art(run, "/train/weights"))
    detail = r.json()["detail"]
    assert r.status_code == 404 and "no artifact 'weights'" in detail and "model, report" in detail
    r = served.get(art(run, "/eval/model"))
    assert r.status_code == 404 and "recorded none" in r.json()["detail"]
    r = served.get(art(run, "/train/model/files"))
    assert r.status_code == 404 and "not a directory" in r.json()["detail"]


def test_a_directory_streams_as_tar_and_lists_its_files(served: Served, produced: Produced) -> None:
    run = produced.second
    r = served.get(art(run, "/train/report"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert members == {"report/a.txt": b"hi\n", "report/sub/b.txt": b"deep"}, "the link is not followed or sent"
    listing = served.get(art(run, "/train/report/files")).json()
    assert [(f["path"], f["size"]) for f in listing["files"]] == [("a.txt", 3), ("sub/b.txt", 4)]
    one = served.get(listing["files"][1]["url"], headers={"Range": "bytes=1-"})
    assert (one.status_code, one.content, one.headers["content-range"]) == (206, b"eep", "bytes 1-3/4")
    assert one.headers["etag"] == f'"{listing["digest"]}/sub/b.txt"'
    r = served.get(art(run, "/train/report/files/sub/nope.txt"))
    assert r.status_code == 404 and "no file 'nope.txt'" in r.json()["detail"]
    r = served.get(art(run, "/train/report/files/link"))
    assert r.status_code == 400 and "not a plain file" in r.json()["detail"], "a symbolic link is never followed"


def test_results_per_commit_newest_first(served: Served, produced: Produced, viewer: str) -> None:
    r = served.get("/v1/results", token=viewer, params={"pipeline": "produce", "since": "30d"})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["columns"] == ["train.acc", "train.loss", "eval.acc"]
    rows = [(i["run_id"], i["commit_sha"], i["results"]["train"]["acc"]) for i in page["items"]]
    assert rows == [
        (produced.second["id"], produced.second["commit_sha"], 0.95),
        (produced.first["id"], produced.first["commit_sha"], 0.91),
    ]
    assert served.get("/v1/results", params={"pipeline": "produce", "limit": 1}).json()["items"][0]["results"] == {
        "train": {"acc": 0.95, "loss": 0.25},
        "eval": {"acc": 0.5},
    }
    r = served.get("/v1/results", params={"pipeline": "produce", "since": "yesterday"})
    assert r.status_code == 400 and "30d" in r.json()["detail"]
    assert (
        served.get("/v1/results", params={"pipeline": "produce", "since": "2999-01-01T00:00:00Z"}).json()["items"] == []
    )
    assert served.get("/v1/results").status_code == 400, "pipeline is required"


def test_results_pages_with_a_cursor(served: Served, produced: Produced, viewer: str) -> None:
    first = served.get("/v1/results", token=viewer, params={"pipeline": "produce", "limit": 1}).json()
    assert [i["run_id"] for i in first["items"]] == [produced.second["id"]] and first["next_cursor"]
    params = {"pipeline": "produce", "limit": 1, "cursor": first["next_cursor"]}
    second = served.get("/v1/results", token=viewer, params=params).json()
    assert [i["run_id"] for i in second["items"]] == [produced.first["id"]]
    assert second["next_cursor"] is None, "the last page says so"
    everything = served.get("/v1/results", params={"pipeline": "produce", "limit": 1, "all_columns": "true"}).json()
    assert everything["columns"] == ["train.acc", "train.loss", "eval.acc"]
    r = served.get("/v1/results", params={"pipeline": "produce", "cursor": "bm90IGEgY3Vyc29y"})
    assert r.status_code == 400 and "cursor" in r.json()["detail"]
    assert served.get("/v1/results", params={"pipeline": "produce", "limit": 0}).status_code == 400


def ctl(served: Served, config: Path, *args: str) -> Any:
    return odinctl(*args, server=served.server, config_dir=config)


def ok(res: Any, code: int = 0) -> str:
    assert res.returncode == code, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return str(res.stdout)


def test_odinctl_artifacts(served: Served, produced: Produced, config: Path) -> None:
    run_id = produced.second["id"]
    table = ok(ctl(served, config, "artifacts", run_id))
    assert "model" in table and "293.0 KiB" in table and "directory" in table
    listed = json.loads(ok(ctl(served, config, "artifacts", run_id, "-o", "json")))
    assert {a["name"] for a in listed["items"]} == {"model", "report"}
    assert yaml.safe_load(ok(ctl(served, config, "artifacts", run_id, "-o", "yaml")))["run_id"] == run_id
    res = ctl(served, config, "artifacts", "no-such-run")
    assert res.returncode == 1 and "no run" in res.stderr


def test_odinctl_get_streams_resumes_and_verifies(
    served: Served, produced: Produced, config: Path, tmp_path: Path
) -> None:
    run_id = produced.second["id"]
    dest = tmp_path / "model.bin"
    res = ctl(served, config, "get", run_id, "train/model", "-o", str(dest))
    ok(res)
    assert dest.read_bytes() == MODEL and "downloaded" in res.stderr
    dest.write_bytes(MODEL[:1000])  # an interrupted download
    res = ctl(served, config, "get", run_id, "train/model", "-o", str(dest))
    ok(res)
    assert dest.read_bytes() == MODEL and "resumed" in res.stderr and "292.0 KiB received" in res.stderr
    res = ctl(served, config, "get", run_id, "train/model", "-o", str(dest))  # already whole: nothing to fetch
    assert "resumed, 0 B received" in ok(res) + res.stderr
    dest.write_bytes(b"X" * 1000)  # a partial file of other bytes: caught by the digest
    res = ctl(served, config, "get", run_id, "train/model", "-o", str(dest))
    assert res.returncode == 1 and "not the artifact's sha256:" in res.stderr
    tar_path = tmp_path / "report.tar"
    ok(ctl(served, config, "get", run_id, "train/report", "-o", str(tar_path)))
    with tarfile.open(tar_path) as tar:
        assert sorted(tar.getnames()) == ["report/a.txt", "report/sub/b.txt"]
    one = tmp_path / "b.txt"
    ok(ctl(served, config, "get", run_id, "train/report/sub/b.txt", "-o", str(one)))
    assert one.read_bytes() == b"deep"
    assert ok(ctl(served, config, "get", run_id, "train/report/a.txt", "-o", "-")) == "hi\n"
    res = ctl(served, config, "get", run_id, "train/weights", "-o", str(tmp_path / "w"))
    assert res.returncode == 1 and "no artifact train/weights" in res.stderr and "train/model" in res.stderr
    res = ctl(served, config, "get", run_id, "model")
    assert res.returncode == 2 and "TASK/NAME" in res.stderr


def test_odinctl_results_table_json_csv(served: Served, produced: Produced, config: Path) -> None:
    table = ok(ctl(served, config, "results", "--pipeline", "produce", "--since", "30d"))
    header, *lines = [line for line in table.splitlines() if line.strip()]
    assert header.split() == ["COMMIT", "RUN", "DATE", "STATUS", "TRAIN.ACC", "LOSS", "EVAL.ACC"]
    assert lines[0].startswith(produced.second["commit_sha"][:7]) and "0.95" in lines[0] and "0.25" in lines[0]
    assert lines[1].startswith(produced.first["commit_sha"][:7]) and "0.91" in lines[1]
    page = json.loads(ok(ctl(served, config, "results", "-p", "produce", "-o", "json")))
    assert [i["results"]["train"]["acc"] for i in page["items"]] == [0.95, 0.91]
    rows = list(csv.DictReader(io.StringIO(ok(ctl(served, config, "results", "-p", "produce", "-o", "csv")))))
    assert [(r["commit"], r["train.acc"], r["loss"], r["eval.acc"]) for r in rows] == [
        (produced.second["commit_sha"], "0.95", "0.25", "0.5"),
        (produced.first["commit_sha"], "0.91", "0.25", "0.5"),
    ]
    res = ctl(served, config, "results", "-p", "produce", "--since", "soon")
    assert res.returncode == 1 and "30d" in res.stderr


def test_odinctl_results_limit_all_yaml_and_usage(served: Served, produced: Produced, config: Path) -> None:
    res = ctl(served, config, "results", "-p", "produce", "--limit", "1")
    _, *lines = [line for line in ok(res).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(produced.second["commit_sha"][:7])
    assert "--all" in res.stderr, "a cut-off table says how to see more"
    rows = list(
        csv.DictReader(io.StringIO(ok(ctl(served, config, "results", "-p", "produce", "--all", "--output=csv"))))
    )
    assert [r["run_id"] for r in rows] == [produced.second["id"], produced.first["id"]]
    listed = json.loads(ok(ctl(served, config, "results", "--pipeline=produce", "--all", "-ojson")))
    assert [i["run_id"] for i in listed["items"]] == [produced.second["id"], produced.first["id"]]
    assert listed["next_cursor"] is None
    document = yaml.safe_load(ok(ctl(served, config, "results", "-p", "produce", "-o", "yaml", "--limit", "1")))
    assert document["columns"] == ["train.acc", "train.loss", "eval.acc"] and document["next_cursor"]
    # What the short path does not take, typer answers as for any command: help, usage errors.
    assert "--all" in ok(ctl(served, config, "results", "--help"))
    for wrong in (["--limit", "0"], ["--limit", "x"], ["-o", "xml"], ["--bogus"], []):
        res = ctl(served, config, "results", *(["-p", "produce"] if wrong else []), *wrong)
        assert res.returncode == 2, (wrong, res.stdout, res.stderr)
    # typer's own `results` command (`python -m odin.cli.odinctl`, no short path) prints the same bytes.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env.update(ODIN_SERVER=served.server.url, ODIN_CONFIG_DIR=str(config), NO_COLOR="1")
    for args in (["-o", "json"], ["--all", "-o", "csv"], []):
        command = ["results", "-p", "produce", "--limit", "1", *args]
        typer_way = subprocess.run(
            [sys.executable, "-m", "odin.cli.odinctl", *command], env=env, capture_output=True, text=True, check=False
        )
        assert ok(typer_way) == ok(ctl(served, config, *command)), args
    res = ctl(served, config, "results", "-p", "produce", "--server", "http://127.0.0.1:9")
    assert res.returncode == 3 and "not logged in to http://127.0.0.1:9" in res.stderr
    res = odinctl("results", "-p", "produce", "-s", "http://127.0.0.1:9", config_dir=config, env={"ODIN_TOKEN": "x"})
    assert res.returncode == 3 and "cannot reach http://127.0.0.1:9" in res.stderr
    res = odinctl("results", "-p", "produce", server=served.server, config_dir=config, env={"ODIN_TOKEN": "odin_x"})
    assert res.returncode == 3 and "odinctl login" in res.stderr, "a rejected token: exit 3, as every command"


def test_odinctl_results_all_streams_every_page_as_one_document(
    served: Served,
    produced: Produced,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In this process, with pages of one run: what `--all` writes page by page is byte for byte the document of a
    single page holding every run."""
    from odin.cli import results

    monkeypatch.setattr(results, "ALL_PAGE", 1)
    monkeypatch.setenv("ODIN_SERVER", served.server.url)
    monkeypatch.setenv("ODIN_CONFIG_DIR", str(config))
    monkeypatch.delenv("ODIN_TOKEN", raising=False)
    whole = served.get("/v1/results", params={"pipeline": "produce", "limit": 100}).json()
    assert results.run(results.Options("produce", all=True, output="json")) == 0
    assert capsys.readouterr().out == json.dumps(whole, indent=2) + "\n"
    assert results.run(results.Options("produce", all=True, output="csv")) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["run_id"], r["train.acc"]) for r in rows] == [
        (produced.second["id"], "0.95"),
        (produced.first["id"], "0.91"),
    ]
    assert results.run(results.Options("nothing-here", all=True, output="json")) == 0
    empty = capsys.readouterr().out
    assert empty == json.dumps({**json.loads(empty), "items": []}, indent=2) + "\n" and json.loads(empty)["items"] == []
