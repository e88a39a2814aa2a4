"""Local servers shaped like the parts of GitHub's, GitLab's, Bitbucket Cloud's and Bitbucket Server's APIs that
checks and reports use, keeping what they were sent as resources, so tests can assert both the exact requests and
what a user would see.

Each answers as its provider documents: `FakeGitHubChecks` creates and updates check runs (at most 50 annotations
per request, appended by each update, `output.annotations_count` reported back), lists a commit's check runs by
name, takes commit statuses, can refuse checks with the 403 a token without Checks permission gets, and with
`app_id` authenticates as a GitHub App does (a JWT for the installation and its access tokens, then those tokens);
`repo_tokens` gives chosen repositories tokens of their own.
`FakeGitLab` takes commit statuses and lists the merge requests of a commit and their notes (paginated), creating
and editing notes. `FakeBitbucket` upserts build statuses by key, reports by id and annotations by `external_id`
(at most 100 per request). `FakeBitbucketServer` takes and lists build statuses by key, answering as Bitbucket
Server / Data Center does (`204 No Content`; errors as `{"errors": [...]}`). All check the token in their own
header; `refuse(method, pattern, status)` makes chosen calls fail, on top of the shared `fail_next` script
(`fake_receivers._Server`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from tests.webhooks.fake_receivers import FakeProvider, Hit

Answer = tuple[int, str, dict[str, str]]


def _json(status: int, body: Any) -> Answer:
    return status, json.dumps(body), {}


@dataclass
class _Forge(FakeProvider):
    token: str = ""
    refusals: list[tuple[str, str, int, str]] = field(default_factory=list)

    def refuse(self, method: str, pattern: str, status: int, message: str = "refused", times: int = 1) -> None:
        """The next `times` calls of `method` to a path matching `pattern` are answered `status` {"message"}."""
        with self.lock:
            self.refusals.extend([(method, pattern, status, message)] * times)

    def authorised(self, headers: dict[str, str], path: str) -> bool:
        raise NotImplementedError

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        raise NotImplementedError

    def respond(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer | None:
        parts = urlsplit(path)
        with self.lock:
            for i, (m, pattern, status, message) in enumerate(self.refusals):
                if m == method and re.search(pattern, parts.path):
                    del self.refusals[i]
                    return _json(status, {"message": message})
            if not self.authorised(headers, parts.path):
                return _json(401, {"message": "Bad credentials"})
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            body = json.loads(raw) if raw else None
            return self.route(method, parts.path, query, body)

    def calls(self, method: str, pattern: str) -> list[Hit]:
        """The accepted calls of `method` to paths matching `pattern`, in order."""
        with self.lock:
            return [
                h
                for h in self.hits
                if h.method == method and re.search(pattern, urlsplit(h.path).path) and h.answered < 300
            ]


@dataclass
class FakeGitHubChecks(_Forge):
    """Check runs and commit statuses of one GitHub repository (any owner/name)."""

    deny_checks: bool = False  # a token that may not write checks (a PAT, an OAuth app): 403 as GitHub answers it
    checks: dict[int, dict[str, Any]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)

    # A GitHub App (`app_id` set): its JWT, signed with the private key of `app_public_key`, finds the installation
    # and mints installation tokens; every other call takes the current installation token only.
    app_id: int | None = None
    app_public_key: Any = None
    installation_id: int = 42
    minted: list[str] = field(default_factory=list)

    # Tokens of chosen repositories (owner/name -> token), as a forge holds one bot or deploy token per repository:
    # calls about those repositories take theirs only, any other repository's calls `token`.
    repo_tokens: dict[str, str] = field(default_factory=dict)

    def authorised(self, headers: dict[str, str], path: str) -> bool:
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        if self.app_id is None:
            named = re.match(r"/repos/([^/]+/[^/]+)/", path)
            own = self.repo_tokens.get(named.group(1)) if named else None
            return bearer == (own if own is not None else self.token)
        if path.endswith("/installation") or path.startswith("/app/"):
            try:
                claims = jwt.decode(bearer, self.app_public_key, algorithms=["RS256"])
            except jwt.PyJWTError:
                return False
            return claims.get("iss") == str(self.app_id) and claims["exp"] - claims["iat"] <= 600
        return bool(self.minted) and bearer == self.minted[-1]

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        if self.app_id is not None and re.search(r"/repos/[^/]+/[^/]+/installation$", path) and method == "GET":
            return _json(200, {"id": self.installation_id, "app_id": self.app_id})
        if path == f"/app/installations/{self.installation_id}/access_tokens" and method == "POST":
            self.minted.append(f"ghs_installation_{len(self.minted) + 1}")
            return _json(201, {"token": self.minted[-1], "expires_at": "2099-01-01T00:00:00Z"})
        if m := re.search(r"/repos/[^/]+/[^/]+/statuses/([0-9a-f]{40})$", path):
            if method != "POST":
                return _json(405, {"message": "Method not allowed"})
            self.statuses.append({**body, "sha": m.group(1)})
            return _json(201, {"id": len(self.statuses)})
        if self.deny_checks and "check-runs" in path:
            return _json(403, {"message": "Resource not accessible by integration"})
        if m := re.search(r"/repos/[^/]+/[^/]+/commits/([0-9a-f]{40})/check-runs$", path):
            found = [
                self._public(c)
                for c in self.checks.values()
                if c["head_sha"] == m.group(1) and c["name"] == query.get("check_name", c["name"])
            ]
            return _json(200, {"total_count": len(found), "check_runs": found})
        if re.search(r"/repos/[^/]+/[^/]+/check-runs$", path) and method == "POST":
            if not body.get("name") or not re.fullmatch(r"[0-9a-f]{40}", str(body.get("head_sha"))):
                return _json(422, {"message": "Invalid request: name and head_sha are required"})
            problem = self._invalid(body)
            if problem:
                return _json(422, {"message": problem})
            check_id = 1000 + len(self.checks)
            self.checks[check_id] = {"id": check_id, "annotations": [], "output": {}}
            self._apply(self.checks[check_id], body)
            return _json(201, self._public(self.checks[check_id]))
        if (m := re.search(r"/repos/[^/]+/[^/]+/check-runs/(\d+)$", path)) and method == "PATCH":
            check = self.checks.get(int(m.group(1)))
            if check is None:
                return _json(404, {"message": "Not Found"})
            problem = self._invalid(body)
            if problem:
                return _json(422, {"message": problem})
            self._apply(check, body)
            return _json(200, self._public(check))
        return _json(404, {"message": "Not Found"})

    @staticmethod
    def _invalid(body: dict[str, Any]) -> str | None:
        if body.get("status") == "completed" and not body.get("conclusion"):
            return "conclusion is required when status is completed"
        output = body.get("output")
        if output is None:
            return None
        if not output.get("title") or not output.get("summary"):
            return "output needs a title and a summary"
        annotations = output.get("annotations") or []
        if len(annotations) > 50:
            return "Only 50 annotations are allowed per request"
        required = ("path", "start_line", "end_line", "annotation_level", "message")
        if any(not all(k in a for k in required) for a in annotations):
            return "an annotation lacks a required field"
        return None

    @staticmethod
    def _apply(check: dict[str, Any], body: dict[str, Any]) -> None:
        for key in ("name", "head_sha", "external_id", "details_url", "status", "conclusion", "started_at"):
            if key in body:
                check[key] = body[key]
        if "completed_at" in body:
            check["completed_at"] = body["completed_at"]
        if "output" in body:
            output = dict(body["output"])
            check["annotations"].extend(output.pop("annotations", None) or [])
            check["output"] = output

    @staticmethod
    def _public(check: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in check.items() if k != "annotations"}
        shown["output"] = {**check["output"], "annotations_count": len(check["annotations"])}
        return shown

    def named(self, name: str, sha: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.checks.values() if c["name"] == name and (sha is None or c["head_sha"] == sha)]


@dataclass
class FakeGitLab(_Forge):
    """Commit statuses, the merge requests of commits and their notes, for one GitLab project."""

    # Merge requests whose head is any commit asked about (iid -> state), as if each commit were pushed to them.
    merge_requests: dict[int, str] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def authorised(self, headers: dict[str, str], path: str) -> bool:
        return headers.get("private-token") == self.token

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        if (m := re.search(r"/projects/[^/]+/statuses/([0-9a-f]{40})$", path)) and method == "POST":
            self.statuses.append({**body, "sha": m.group(1)})
            return _json(201, {"id": len(self.statuses), "status": body["state"]})
        if m := re.search(r"/projects/[^/]+/repository/commits/([0-9a-f]{40})/merge_requests$", path):
            found = [{"iid": iid, "sha": m.group(1), "state": state} for iid, state in self.merge_requests.items()]
            return _json(200, found)
        if m := re.search(r"/projects/[^/]+/merge_requests/(\d+)/notes(?:/(\d+))?$", path):
            iid = int(m.group(1))
            if iid not in self.merge_requests:
                return _json(404, {"message": "404 Not found"})
            notes = self.notes.setdefault(iid, [])
            if method == "GET" and m.group(2) is None:
                per_page, page = int(query.get("per_page", 20)), int(query.get("page", 1))
                return _json(200, notes[(page - 1) * per_page : page * per_page])
            if method == "POST" and m.group(2) is None:
                if not body.get("body"):
                    return _json(400, {"message": "body is missing"})
                note = {"id": 5000 + sum(len(n) for n in self.notes.values()), "body": body["body"], "system": False}
                notes.append(note)
                return _json(201, note)
            if method == "PUT" and m.group(2) is not None:
                for note in notes:
                    if note["id"] == int(m.group(2)):
                        note["body"] = body["body"]
                        return _json(200, note)
                return _json(404, {"message": "404 Note Not Found"})
        return _json(404, {"message": "404 Not found"})


@dataclass
class FakeBitbucket(_Forge):
    """Build statuses and Code Insights reports with annotations, for one Bitbucket Cloud repository."""

    statuses: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    reports: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def authorised(self, headers: dict[str, str], path: str) -> bool:
        return headers.get("authorization") == f"Bearer {self.token}"

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        prefix = r"/2\.0/repositories/[^/]+/[^/]+/commit/([0-9a-f]{40})"
        if (m := re.search(prefix + r"/statuses/build$", path)) and method == "POST":
            missing = [k for k in ("key", "state", "url") if not body.get(k)]
            if missing or len(body["key"]) > 40:
                return _json(400, {"type": "error", "error": {"message": f"bad build status: {missing or 'key'}"}})
            self.statuses[(m.group(1), body["key"])] = body
            return _json(201, body)
        if (m := re.search(prefix + r"/reports/([^/]+)$", path)) and method == "PUT":
            if body.get("report_type") not in ("SECURITY", "COVERAGE", "TEST", "BUG") or not body.get("title"):
                return _json(400, {"type": "error", "error": {"message": "bad report"}})
            key = (m.group(1), m.group(2))
            kept = self.reports.get(key, {}).get("annotations", {})
            self.reports[key] = {**body, "annotations": kept}
            return _json(200, body)
        if (m := re.search(prefix + r"/reports/([^/]+)/annotations$", path)) and method == "POST":
            report = self.reports.get((m.group(1), m.group(2)))
            if report is None:
                return _json(404, {"type": "error", "error": {"message": "report not found"}})
            if not isinstance(body, list) or len(body) > 100:
                return _json(400, {"type": "error", "error": {"message": "at most 100 annotations per request"}})
            if any(not a.get("external_id") or not a.get("annotation_type") or not a.get("summary") for a in body):
                return _json(400, {"type": "error", "error": {"message": "an annotation lacks a required field"}})
            if len(report["annotations"] | {a["external_id"]: a for a in body}) > 1000:
                return _json(400, {"type": "error", "error": {"message": "at most 1000 annotations per report"}})
            for a in body:
                report["annotations"][a["external_id"]] = a
            return _json(200, body)
        return _json(404, {"type": "error", "error": {"message": "Resource not found"}})


def _server_errors(status: int, message: str, context: str | None = None, exception: str | None = None) -> Answer:
    """An error as Bitbucket Server / Data Center answers it: `{"errors": [{context, message, exceptionName}]}`."""
    return _json(status, {"errors": [{"context": context, "message": message, "exceptionName": exception}]})


@dataclass
class FakeBitbucketServer(_Forge):
    """Bitbucket Server / Data Center build statuses (`/rest/build-status/1.0/commits/{sha}`), under an optional
    context path: a POST adds or replaces the build of its `key` (`204 No Content`), a GET lists a commit's builds
    as a page. `posted` keeps every accepted build in order, so a test sees each state a build went through."""

    context_path: str = ""
    builds: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    posted: list[dict[str, Any]] = field(default_factory=list)

    STATES = ("INPROGRESS", "SUCCESSFUL", "FAILED")

    def authorised(self, headers: dict[str, str], path: str) -> bool:
        return headers.get("authorization") == f"Bearer {self.token}"

    def respond(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer | None:
        if not self.authorised(headers, urlsplit(path).path):  # the server's own words for a bad token
            return _server_errors(
                401,
                "Authentication failed. Please check your credentials and try again.",
                exception="com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException",
            )
        return super().respond(method, path, headers, raw)

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        m = re.fullmatch(re.escape(self.context_path) + r"/rest/build-status/1\.0/commits/([0-9a-f]{40})", path)
        if m is None:
            return _server_errors(404, f"No resource at {path}")
        sha = m.group(1)
        if method == "GET":
            values = [b for (s, _), b in self.builds.items() if s == sha]
            return _json(200, {"size": len(values), "limit": 25, "isLastPage": True, "values": values, "start": 0})
        if method != "POST":
            return _server_errors(405, f"{method} is not supported here")
        if not isinstance(body, dict):
            return _server_errors(400, "The build status is required")
        for name, limit in (("key", 255), ("url", 450)):
            if not isinstance(body.get(name), str) or not body[name] or len(body[name]) > limit:
                return _server_errors(400, f"A {name} of at most {limit} characters is required", name)
        if body.get("state") not in self.STATES:
            return _server_errors(400, f"state must be one of {', '.join(self.STATES)}", "state")
        build = {k: body[k] for k in ("state", "key", "name", "url", "description") if k in body}
        build["dateAdded"] = 1715790062000 + len(self.posted)
        self.builds[(sha, body["key"])] = build
        self.posted.append({**build, "sha": sha})
        return 204, "", {}

    def states(self, sha: str, key: str) -> list[str]:
        """The states the build `key` of `sha` was set to, in order."""
        with self.lock:
            return [p["state"] for p in self.posted if p["sha"] == sha and p["key"] == key]
