"""Bad bytes are a 400, never a 500: NUL and control characters in paths, queries, JSON bodies and signed webhooks.

A NUL byte reaching Postgres used to fail deep in the driver (a 500 with a traceback in the log); SQLite stored it
silently. Every route that hands a string to the store is tried here, on both backends, over real HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import Served, start_server
from tests.support.wait import wait_until

WEBHOOK_SECRET = "whsec-bad-input-0123456789"


@pytest.fixture(scope="module")
def hardened(module_db: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server with a webhook secret, so signed deliveries get as far as the store."""
    backend, url = module_db
    s = start_server(tmp_path_factory.mktemp(f"bad-{backend}"), url, backend, {"ODIN_WEBHOOK_SECRET": WEBHOOK_SECRET})
    try:
        yield s
    finally:
        s.server.stop()


def signed_generic(served: Served, body: dict[str, Any]) -> httpx.Response:
    raw = json.dumps(body).encode()
    digest = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"X-Odin-Signature": f"sha256={digest}", "Content-Type": "application/json"}
    return httpx.post(f"{served.url}/webhooks/generic", content=raw, headers=headers, timeout=30)


# (method, path, json body, authenticated): each hands the NUL to the store (or to git) unless it is stopped first.
NUL_REQUESTS: list[tuple[str, str, dict[str, Any] | None, bool]] = [
    ("POST", "/v1/auth/token", {"username": "adm\u0000in", "password": "whatever-password"}, False),
    ("POST", "/v1/auth/token", {"username": "admin", "password": "pass\u0000word"}, False),
    ("GET", "/v1/runs/a%00b", None, True),
    ("GET", "/v1/runs?pipeline=%00", None, True),
    ("GET", "/v1/runs?branch=%00", None, True),
    ("GET", "/v1/runs?triggered_by=a%00", None, True),
    ("GET", "/v1/runs?parent_run=a%00", None, True),
    ("GET", "/v1/runs/a%00b/events", None, True),
    ("GET", "/v1/commits/abc%00def", None, True),
    ("GET", "/v1/users/a%00b", None, True),
    ("PATCH", "/v1/users/a%00b", {"role": "viewer"}, True),
    ("POST", "/v1/users", {"username": "nul-user", "password": "a-long-password", "email": "a\u0000@b.c"}, True),
    ("POST", "/v1/users", {"username": "nul\u0000user", "password": "a-long-password"}, True),
    ("PATCH", "/v1/users/admin", {"email": "x\u0000@y.z"}, True),
    ("POST", "/v1/auth/tokens", {"name": "ci\u0000"}, True),
    ("POST", "/v1/runs", {"pipeline": "ok\u0000"}, True),
    ("POST", "/v1/runs", {"pipeline": "ok", "ref": "ma\u0000in"}, True),
    ("POST", "/v1/runs", {"pipeline": "ok", "params": {"who": "a\u0000b"}}, True),
    ("GET", "/v1/pipelines?ref=%00", None, True),
    ("GET", "/v1/pipelines/o%00k", None, True),
]


@pytest.mark.parametrize(("method", "path", "body", "auth"), NUL_REQUESTS)
def test_nul_anywhere_is_a_400_that_says_so(
    hardened: Served, method: str, path: str, body: dict[str, Any] | None, auth: bool
) -> None:
    headers = hardened.headers() if auth else {}
    r = httpx.request(method, f"{hardened.url}{path}", json=body, headers=headers, timeout=30)
    assert r.status_code == 400, r.text
    assert "NUL" in r.json()["detail"] or "control character" in r.json()["detail"], r.text


@pytest.mark.parametrize(
    "path",
    ["/v1/runs/x%0Ay", "/v1/runs?pipeline=a%0Db", "/v1/users/a%1Bb", "/v1/pipelines?ref=ma%01in"],
)
def test_control_characters_in_paths_and_queries_are_400(hardened: Served, path: str) -> None:
    r = hardened.get(path)
    assert r.status_code == 400, r.text
    assert "control character" in r.json()["detail"], r.text


def test_a_signed_webhook_with_a_nul_ref_is_400(hardened: Served) -> None:
    for body in (
        {"repo": hardened.remote.file_url, "ref": "ma\u0000in"},
        {"repo": hardened.remote.file_url, "ref": "main", "pipeline": "ok", "id": "nul-1", "params": {"a\u0000": 1}},
        {"repo": hardened.remote.file_url, "ref": "ma\u0000in", "pipeline": "ok", "id": "nul-2"},
        {"repo": hardened.remote.file_url, "ref": "main", "pipeline": "ok", "id": "nul\u00003"},
    ):
        r = signed_generic(hardened, body)
        assert r.status_code == 400, (body, r.text)
        assert "NUL" in r.json()["detail"], r.text


def signed_github(served: Served, event: str, body: dict[str, Any], delivery: str) -> httpx.Response:
    raw = json.dumps(body).encode()
    digest = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }
    return httpx.post(f"{served.url}/webhooks/github", content=raw, headers=headers, timeout=30)


def github_pull(served: Served, *, head_ref: str = "feature", base_ref: str = "main", login: str = "dev") -> Any:
    repo = {"full_name": "team/odin", "clone_url": served.remote.file_url}
    return {
        "number": 7,
        "head": {"ref": head_ref, "sha": served.remote.head, "repo": repo},
        "base": {"ref": base_ref, "sha": served.remote.head, "repo": repo},
        "user": {"login": login},
    }


def github_deliveries(served: Served) -> list[tuple[str, str, dict[str, Any]]]:
    """(what is poisoned, event, body): one NUL in each field a GitHub delivery hands on, signed correctly."""
    url, sha = served.remote.file_url, served.remote.head
    repository = {"clone_url": url, "full_name": "team/odin"}
    push = {"ref": "refs/heads/main", "before": "0" * 40, "after": sha, "repository": repository}
    comment = {
        "action": "created",
        "issue": {"number": 7, "pull_request": {}},
        "comment": {"body": "/retest", "author_association": "OWNER", "user": {"login": "dev"}},
        "repository": repository,
    }
    return [
        ("push ref", "push", {**push, "ref": "refs/heads/ma\u0000in"}),
        ("push repository URL", "push", {**push, "repository": {"clone_url": url + "\u0000"}}),
        (
            "pull request head ref",
            "pull_request",
            {
                "action": "opened",
                "pull_request": github_pull(served, head_ref="fea\u0000ture"),
                "repository": repository,
            },
        ),
        (
            "pull request base branch",
            "pull_request",
            {"action": "opened", "pull_request": github_pull(served, base_ref="ma\u0000in"), "repository": repository},
        ),
        (
            "pull request author",
            "pull_request",
            {"action": "opened", "pull_request": github_pull(served, login="d\u0000ev"), "repository": repository},
        ),
        (
            "pull request action",
            "pull_request",
            {"action": "clo\u0000sed", "pull_request": github_pull(served), "repository": repository},
        ),
        ("comment body", "issue_comment", {**comment, "comment": {**comment["comment"], "body": "/retest o\u0000k"}}),
        ("commenter", "issue_comment", {**comment, "comment": {**comment["comment"], "user": {"login": "d\u0000ev"}}}),
        ("comment action", "issue_comment", {**comment, "action": "edi\u0000ted"}),
    ]


def test_a_signed_github_delivery_with_a_nul_in_any_field_is_4xx(hardened: Served) -> None:
    """Not only the generic webhook: each field a GitHub push, pull request or comment hands on is checked."""
    for i, (what, event, body) in enumerate(github_deliveries(hardened)):
        r = signed_github(hardened, event, body, f"nul-github-{hardened.backend}-{i}")
        assert 400 <= r.status_code < 500, (what, r.status_code, r.text)
        assert "NUL" in r.json()["detail"], (what, r.text)
    assert "Traceback" not in hardened.server.log()


def test_json_text_that_merely_mentions_backslash_u0000_is_fine(hardened: Served) -> None:
    # An escaped backslash followed by "u0000" is six ordinary characters, not a NUL.
    r = httpx.post(
        f"{hardened.url}/v1/auth/token",
        content=b'{"username": "no\\\\u0000body", "password": "wrong-password"}',
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 401, r.text


BAD_REFS = ["main..v1", "-main", "@{-1}", "ma\x01in", "--upload-pack=x", "main.lock"]


@pytest.mark.parametrize("ref", BAD_REFS)
def test_invalid_refs_are_400_on_every_entry_point(hardened: Served, ref: str) -> None:
    started = hardened.post("/v1/runs", json={"pipeline": "ok", "ref": ref})
    assert started.status_code == 400, started.text
    listed = hardened.get("/v1/pipelines", params={"ref": ref})
    assert listed.status_code == 400, listed.text
    detail = hardened.get("/v1/pipelines/ok", params={"ref": ref})
    assert detail.status_code == 400, detail.text
    hooked = signed_generic(hardened, {"repo": hardened.remote.file_url, "ref": ref, "pipeline": "ok", "id": ref})
    assert hooked.status_code == 400, hooked.text
    pushed = signed_generic(hardened, {"repo": hardened.remote.file_url, "ref": ref})
    assert pushed.status_code == 400, pushed.text
    for r in (started, listed, detail):
        assert "ref" in r.json()["detail"], r.text


def test_a_ref_keeps_its_kind_from_request_to_run(hardened: Served) -> None:
    """`refs/tags/main` is the tag, never the branch of the same name; `refs/heads/main` is the branch."""
    old = hardened.remote.head
    hardened.remote.tag("main", old)
    new = hardened.remote.commit({"ok/kind.txt": "v2"}, message="After the tag")

    hooked = signed_generic(
        hardened, {"repo": hardened.remote.file_url, "ref": "refs/tags/main", "pipeline": "ok", "id": "kind-tag"}
    )
    assert hooked.status_code == 201, hooked.text
    by_tag_hook = hardened.get(f"/v1/runs/{hooked.json()['run_id']}").json()
    assert (by_tag_hook["commit_sha"], by_tag_hook["branch"]) == (old, None)

    by_tag = hardened.start("ok", ref="refs/tags/main")
    assert (by_tag["commit_sha"], by_tag["branch"]) == (old, None)

    by_branch = hardened.start("ok", ref="refs/heads/main")
    assert (by_branch["commit_sha"], by_branch["branch"]) == (new, "main")
    branch_hook = signed_generic(
        hardened, {"repo": hardened.remote.file_url, "ref": "refs/heads/main", "pipeline": "ok", "id": "kind-branch"}
    )
    assert branch_hook.status_code == 201, branch_hook.text
    by_branch_hook = hardened.get(f"/v1/runs/{branch_hook.json()['run_id']}").json()
    assert (by_branch_hook["commit_sha"], by_branch_hook["branch"]) == (new, "main")
    for run_id in (by_tag_hook["id"], by_tag["id"], by_branch["id"], by_branch_hook["id"]):
        hardened.wait_run(run_id)


def test_control_characters_cannot_forge_log_lines(hardened: Served) -> None:
    forged = "2026-01-01 00:00:00,000 WARNING odin.server: admin password reset by forged-marker"
    for path in (f"/v1/runs/x%0A{forged}", f"/v1/runs/x%0D%0A{forged}"):
        assert hardened.get(path).status_code == 400
    wait_until(lambda: hardened.server.log().count("forged-marker") >= 2, 10, message="the requests were logged")
    lines = hardened.server.log().splitlines()
    assert not [line for line in lines if line.startswith(forged[:30])], "a request wrote a line of its own"
    assert any("x\\n2026-01-01" in line for line in lines), "the newline is written as an escape"


def test_esc_c1_and_unicode_line_separators_reach_the_log_escaped(hardened: Served) -> None:
    """Not only `\\n`: ESC drives a terminal, NEL and CSI (C1) and U+2028/U+2029 end lines in viewers."""
    marker = f"sep-marker-{hardened.backend}-"
    sent = {
        "%1B%5B2J": "\\x1b[2J",
        "%C2%85": "\\x85",
        "%C2%9B": "\\x9b",
        "%E2%80%A8": "\\u2028",
        "%E2%80%A9": "\\u2029",
    }
    for encoded in sent:
        assert hardened.get(f"/v1/runs/{marker}{encoded}end").status_code in (400, 404)
    wait_until(lambda: hardened.server.log().count(marker) >= len(sent), 10, message="the requests were logged")
    logged = [line for line in hardened.server.log().split("\n") if marker in line]  # splitlines() obeys U+2028
    for line in logged:
        assert not set(line) & set("\x1b\x85\x9b\u2028\u2029"), repr(line)
    for escaped in sent.values():
        assert any(f"{marker}{escaped}end" in line for line in logged), (escaped, logged)


@pytest.mark.parametrize("path", ["/etc/passwd", "//etc/passwd", "a//b.txt", "%2E/a.txt", "a/%2E/b.txt", "dir/"])
def test_file_paths_that_are_not_plain_relative_paths_are_422(hardened: Served, path: str) -> None:
    """`PUT .../files//etc/passwd` used to commit `ok/etc/passwd`; nothing is guessed now."""
    before = hardened.remote.pull()
    write = hardened.request("PUT", f"/v1/pipelines/ok/files/{path}", json={"content": "pwned"})
    assert write.status_code == 422, (path, write.text)
    read = hardened.get(f"/v1/pipelines/ok/files/{path}")
    assert read.status_code == 422, (path, read.text)
    assert hardened.remote.pull() == before, "nothing was committed"


def test_the_server_logged_no_traceback(hardened: Served) -> None:
    assert "Traceback" not in hardened.server.log()
