"""The console over plain HTTP against a real `odin serve` published under a path prefix (ODIN_PUBLIC_URL's path):
links, the cookie's path, security headers, bad input on the login form, CSRF on logout, errors as pages, weight.

A reverse proxy serving Odin at https://example.com/odin/ strips `/odin` before forwarding, so the server's routes
stay where they are while every URL it writes into a page starts with the prefix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from tests.console.conftest import HELLO, PASSWORD
from tests.support.git import GitRemote
from tests.support.server import OdinServer
from tests.support.wait import wait_until

PREFIX = "/odin"


@pytest.fixture(scope="module")
def prefixed_remote(tmp_path_factory: pytest.TempPathFactory) -> GitRemote:
    remote = GitRemote.create(tmp_path_factory.mktemp("console-prefix-remote") / "remote")
    remote.commit({"hello/main.yml": HELLO}, "add hello")
    return remote


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory, prefixed_remote: GitRemote) -> Iterator[OdinServer]:
    tmp = tmp_path_factory.mktemp("console-prefix")
    remote = prefixed_remote
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_PUBLIC_URL": f"https://odin.example.com{PREFIX}/",
        # Every test logs in afresh (and one tries the form a few times): more than the default 10 a minute.
        "ODIN_LOGIN_ATTEMPTS_PER_MINUTE": "100",
    }
    with OdinServer(tmp / "state", env) as server:
        wait_until(lambda: "first sync" in server.log(), 30, message="the server's first sync")
        yield server


def logged_in(server: OdinServer) -> httpx.Client:
    http = httpx.Client(base_url=server.url, timeout=30)
    try:
        return _log_in(http)
    except BaseException:
        http.close()
        raise


def _log_in(http: httpx.Client) -> httpx.Client:
    res = http.post("/console/login", data={"username": "admin", "password": PASSWORD, "next": ""})
    assert res.status_code == 303, res.text
    assert res.headers["location"] == f"{PREFIX}/console/commits"
    set_cookie = res.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "samesite=strict" in set_cookie.lower() and "Secure" in set_cookie
    assert f"Path={PREFIX}/" in set_cookie
    token = re.search(r"odin_session=([^;]+)", set_cookie)
    assert token
    http.cookies.set("odin_session", token.group(1))  # the Secure cookie would not go back over plain http
    return http


@pytest.fixture
def http(prefixed: OdinServer) -> Iterator[httpx.Client]:
    """A logged-in client: the session cookie as the login form set it."""
    client = logged_in(prefixed)
    try:
        yield client
    finally:
        client.close()


def test_every_url_carries_the_prefix(prefixed: OdinServer, http: httpx.Client) -> None:
    res = httpx.get(prefixed.url + "/")
    assert res.status_code in (301, 302, 307) and res.headers["location"] == f"{PREFIX}/console/commits"
    res = httpx.get(prefixed.url + "/console/commits")
    assert res.status_code == 303
    assert res.headers["location"] == f"{PREFIX}/console/login?next={PREFIX}/console/commits"
    page = http.get("/console/commits").text
    urls = [u for u in re.findall(r'(?:href|src|action)="([^"#?]+)', page) if u != "data:,"]  # the empty favicon
    assert urls and all(u.startswith(f"{PREFIX}/") for u in urls), urls
    assert f'<meta name="odin-base" content="{PREFIX}">' in page


def test_pages_are_not_cached_framed_or_scripted_from_elsewhere(prefixed: OdinServer, http: httpx.Client) -> None:
    res = http.get("/console/commits")
    assert res.headers["cache-control"] == "no-store"
    assert res.headers["x-frame-options"] == "DENY"
    csp = res.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "http://" not in res.text.replace(prefixed.url, "") and "https://" not in res.text  # nothing from a CDN


def test_login_form_says_what_is_wrong(prefixed: OdinServer) -> None:
    with httpx.Client(base_url=prefixed.url) as anonymous:
        _login_form_answers(anonymous)


def _login_form_answers(http: httpx.Client) -> None:
    res = http.post("/console/login", data={"username": "", "password": ""})
    assert res.status_code == 400 and "enter your user name and password" in res.text
    res = http.post("/console/login", data={"username": "admin", "password": "nope"})
    assert res.status_code == 401 and "wrong username or password" in res.text
    res = http.post(
        "/console/login",
        data={"username": "admin", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert res.status_code == 403 and "cross-origin" in res.text
    # `next` only ever leads to a console page of this server.
    for target in ("https://evil.example/", "//evil.example/console/", f"{PREFIX}/v1/runs"):
        res = http.post("/console/login", data={"username": "admin", "password": PASSWORD, "next": target})
        assert res.headers["location"] == f"{PREFIX}/console/commits", target


def test_logout_needs_the_csrf_token(prefixed: OdinServer, http: httpx.Client) -> None:
    res = http.post("/console/logout", data={"csrf": "forged"})
    assert res.status_code == 403
    assert http.get("/v1/auth/whoami").status_code == 200  # still logged in
    csrf = re.search(r'name="csrf-token" content="([0-9a-f]+)"', http.get("/console/commits").text)
    assert csrf
    res = http.post("/console/logout", data={"csrf": csrf.group(1)})
    assert res.status_code == 303 and res.headers["location"] == f"{PREFIX}/console/login"
    assert http.get("/v1/auth/whoami").status_code == 401


def test_errors_are_pages_with_the_apis_message(prefixed: OdinServer, http: httpx.Client) -> None:
    res = http.get("/console/runs/nope-1234567-1")
    assert res.status_code == 404 and "no run &#39;nope-1234567-1&#39;" in res.text
    res = http.get("/console/commits", params={"status": "wobbly"})
    assert res.status_code == 400 and "unknown status" in res.text and "valid, invalid" in res.text
    res = http.get("/console/commits", params={"cursor": "garbage"})
    assert res.status_code == 400


def test_a_warning_is_listed_apart_from_the_errors(
    prefixed: OdinServer, prefixed_remote: GitRemote, http: httpx.Client
) -> None:
    both = "tasks:\n  - {name: t, image: busybox, command: [echo], resource_type: ElasticJob, depends: ghost}\n"
    sha = prefixed_remote.commit({"elastic/main.yml": both}, "elastic and broken")
    page = wait_until(
        lambda: (res := http.get(f"/console/commits/{sha}")).status_code == 200 and res.text, 30, interval=0.2
    )
    items = re.findall(r'<li class="(problem[^"]*)"><code>elastic/main\.yml:[^<]*</code> (.*)', page)
    assert sorted(cls for cls, _ in items) == ["problem", "problem warning"]
    [warned] = [text for cls, text in items if cls == "problem warning"]
    assert warned.startswith('<strong class="sev">warning:</strong> resource_type ElasticJob is deprecated')
    # The commits list and the pipeline's page list them the same way.
    for url in ("/console/commits?status=invalid", "/console/pipelines/elastic"):
        listed = re.findall(r'<li class="(problem[^"]*)"><code>elastic/main\.yml:', http.get(url).text)
        assert sorted(listed) == ["problem", "problem warning"], url


def test_a_template_pipelines_page_shows_the_template(
    prefixed: OdinServer, prefixed_remote: GitRemote, http: httpx.Client
) -> None:
    template = "name: tpl\ntasks:\n  - {name: t, image: busybox, command: [echo, '{{ word | default(\"hi\") }}']}\n"
    prefixed_remote.commit({"tpl/main.yml.jinja2": template}, "a template")
    page = wait_until(
        lambda: (res := http.get("/console/pipelines/tpl")).status_code == 200 and res.text, 30, interval=0.2
    )
    assert "word | default" in page


def test_page_weight_within_budget(prefixed: OdinServer, http: httpx.Client) -> None:
    """Issue 12's budget: a page and everything it loads, uncompressed, at most 500 kB (the API docs aside)."""
    page = http.get("/console/commits").text
    assets = [*re.findall(rf'(?:href|src)="{PREFIX}(/console/static/[^"]+)"', page), "/console/static/run.js"]
    total = len(page.encode()) + sum(len(http.get(a).content) for a in set(assets))
    assert total <= 500_000, total
    for asset in set(assets):
        assert http.get(asset).headers["cache-control"] == "max-age=3600"


def test_the_package_ships_the_console() -> None:
    """`pip install .` must carry the templates and assets: they are package data of odin.api.console."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["odin.api.console"]
    root = Path(__file__).resolve().parents[2] / "api" / "console"
    shipped = {p for pattern in data for p in root.glob(pattern)}
    assert shipped == {p for p in root.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts}


def test_api_docs_are_served_locally(prefixed: OdinServer) -> None:
    """/schema (Redoc) loads its script from this server under the prefix, and nothing from anywhere else."""
    page = httpx.get(prefixed.url + "/schema").text
    assert f'<script src="{PREFIX}/console/static/redoc/redoc.standalone.js"' in page
    assert not re.search(r"(?:src|href)=['\"]https?://", page), "the API docs must not load anything from a CDN"
    bundle = httpx.get(prefixed.url + "/console/static/redoc/redoc.standalone.js")
    assert bundle.status_code == 200 and len(bundle.content) > 500_000


def test_the_websocket_takes_the_cookie_only_from_this_site(prefixed: OdinServer, http: httpx.Client) -> None:
    """The console's pages subscribe with their cookie; a page of another site cannot (cross-site WebSocket
    hijacking): without a token of its own it must authenticate first, and is closed with 4401."""
    cookie = "odin_session=" + next(c.value or "" for c in http.cookies.jar if c.name == "odin_session")
    ws_url = prefixed.url.replace("http://", "ws://") + "/v1/ws"
    host = prefixed.url.removeprefix("http://")
    with ws_connect(ws_url, subprotocols=[Subprotocol("odin.v1")],
                    additional_headers={"Cookie": cookie, "Origin": f"http://{host}"}) as ws:  # fmt: skip
        welcome = json.loads(ws.recv(timeout=30))
        assert welcome["type"] == "welcome" and welcome["user"] == "admin"
    with ws_connect(ws_url, subprotocols=[Subprotocol("odin.v1")],
                    additional_headers={"Cookie": cookie, "Origin": "https://evil.example"}) as ws:  # fmt: skip
        ws.send(json.dumps({"type": "subscribe", "all": True}))
        refused = json.loads(ws.recv(timeout=30))
        assert refused["type"] == "error" and refused["status"] == 4401
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
