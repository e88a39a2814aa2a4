"""One sync of one repository: fetch, find the new commits, validate what changed, record, create runs.

The poller and the webhooks meet here: both only *request* a sync, and `RepoSync.sync` is serialised per
repository, so a push seen by both produces the same commits and — through the store's unique `dedupe_key` — one
run per (commit, pipeline).

Crash safety: the commit rows, the runs they start and the repository's `last_seen_sha` are written in one
transaction per processed commit (per push with the `latest` policy). A sync killed half-way resumes from the last
commit it recorded; nothing is created twice.

Policies for a push of several commits:
- `latest` (default): only the new tip runs; the pipelines run are those changed anywhere in the push (tree diff
  from the previous tip, or from the merge base after a force push); the other commits are recorded as absorbed.
- `each`: every commit runs the pipelines it changed against its first parent.
A `[skip ci]`/`[skip odin]` marker on a commit (on the tip, for `latest`) starts nothing.

Which of the changed pipelines run is decided by the commit's `.odin.yml` branch and path filters, when it has one
(`odin.controller.filters`); an invalid one is recorded as the commit's problems and starts nothing.

Each run goes through the same admission as a run started on request (`odin.controller.admission`): one whose task
can never fit (more GPUs, or a GPU model, than any node has) is recorded failed with the reason `Rejected` and the
message, its tasks skipped, and is not handed to the engine; the commit's other pipelines run as usual.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odin.controller.admission import GpuCheck, judge
from odin.controller.bus import EventDict
from odin.controller.filters import read_repo_config, select_pipelines
from odin.controller.git.errors import GitError
from odin.controller.git.mirror import Mirror
from odin.controller.git.models import ChangeSet, CommitInfo
from odin.controller.pipelines import PipelineAt, materialize, read_pipeline
from odin.controller.schedule_sources import commit_schedules
from odin.controller.store import repositories
from odin.controller.store.commits import SeenCommit, record_commit
from odin.controller.store.db import Connection, DbEngine, transaction
from odin.controller.store.leadership import Fence, hold
from odin.controller.store.runs import NewRun, create_run, run_created_events
from odin.controller.store.types import utcnow
from odin.controller.validation import Validator
from odin.controller.vocabulary import Trigger
from odin.schema import Limits, ParamError, resolve_params
from odin.schema.problems import Problem

log = logging.getLogger(__name__)

LOGGED_PROBLEMS = 100
"""Problems logged per commit (each file's list is capped already, but a commit may change many pipelines)."""


@dataclass
class SyncOutcome:
    """What one sync did; `error` set when the remote could not be fetched."""

    tip: str | None = None
    commits: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # of `runs`: recorded failed by admission, never started
    error: GitError | None = None
    changed: bool = False


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Why a sync is wanted. `on_done` is called (on the poller's thread; keep it short) with the outcome of the first
    sync that *starts after* the request was made, or None if that sync failed unexpectedly: webhooks use it to check
    a payload's commit against what was really fetched."""

    trigger: Trigger = Trigger.POLL
    by: str | None = None
    on_done: Callable[[SyncOutcome | None], None] | None = field(default=None, compare=False)


_MAX_EXPECTED = 256


class RepoSync:
    """Syncs one followed repository. Thread-safe: concurrent calls are serialised."""

    def __init__(
        self,
        db: DbEngine,
        repo_id: int,
        mirror: Mirror,
        *,
        branch: str,
        trees_dir: Path,
        run_policy: str = "latest",
        run_on_first_sync: bool = False,
        on_runs_created: Callable[[Sequence[str]], None] = lambda _ids: None,
        limits: Limits | None = None,
        publish: Callable[[EventDict], None] = lambda _event: None,
        validator: Validator | None = None,
        admission: GpuCheck | None = None,
        further: bool = False,
        fence: Callable[[], Fence | None] = lambda: None,
    ) -> None:
        """`further`: `branch` is one the repository's patterns match besides its own branch; where its sync left
        off and its condition are kept per branch (`repo_branches`) instead of on the repository's row."""
        self.db = db
        self.further = further
        self.fence = fence  # the leader's epoch: runs are created only while it is current (store/leadership.py)
        self.repo_id = repo_id
        self.mirror = mirror
        self.branch = branch
        self.trees_dir = trees_dir
        self.run_policy = run_policy
        self.run_on_first_sync = run_on_first_sync
        self.on_runs_created = on_runs_created
        self.limits = limits or Limits()
        self.publish = publish  # committed events (commit.seen, run.created) go to the controller's bus
        self.validator = validator  # None: in this thread (tests); the controller's validates in worker processes
        self.admission = admission  # the executor's `gpu_shortfall`: runs that can never fit are recorded rejected
        self._lock = threading.Lock()
        self._last_seen: str | None = None
        self._loaded = False
        self._condition: tuple[str, str, str] | None = None
        self._expected: dict[str, SyncRequest] = {}  # sha -> who made it through Odin (see `expect`)
        self._expected_lock = threading.Lock()

    def expect(self, sha: str, request: SyncRequest) -> None:
        """Attribute the commit `sha` to `request` whichever sync finds it first.

        A file written through the API is committed and pushed by Odin itself, and then a sync is requested on the
        writer's behalf. The regular poll may fetch the pushed commit before that request is served; without this the
        run would say the poller started it. Called before the push, so no sync can see the commit unattributed.
        Bounded: an entry for a push that never arrived is dropped with the oldest ones."""
        with self._expected_lock:
            self._expected[sha] = request
            while len(self._expected) > _MAX_EXPECTED:
                del self._expected[next(iter(self._expected))]

    def forget(self, sha: str) -> None:
        """Drop an attribution whose push failed."""
        with self._expected_lock:
            self._expected.pop(sha, None)

    def _attributed(self, sha: str, request: SyncRequest) -> SyncRequest:
        with self._expected_lock:
            expected = self._expected.pop(sha, None)
        return request if expected is None else SyncRequest(trigger=expected.trigger, by=expected.by)

    def sync(self, request: SyncRequest | None = None) -> SyncOutcome:
        request = request or SyncRequest()
        with self._lock:
            return self._sync(request)

    # -- steps -----------------------------------------------------------------------------------------------
    def _sync(self, request: SyncRequest) -> SyncOutcome:
        if not self._loaded:
            self._load_state()
        try:
            fetched = self.mirror.fetch()
        except GitError as e:
            self._set_condition("False", type(e).__name__, e.message)
            return SyncOutcome(error=e)
        self._set_condition("True", "Synced", f"{self.branch}@sha1:{fetched.tip}")
        if fetched.tip == self._last_seen:
            return SyncOutcome(tip=fetched.tip)  # the cheap, common case: nothing new
        outcome = SyncOutcome(tip=fetched.tip, changed=True)
        last = self._last_seen
        if last is None:
            self._baseline(fetched.tip, request, outcome)
        else:
            if fetched.forced or not self.mirror.is_ancestor(last, fetched.tip):
                log.warning("repo %s: %s was force-pushed (%s -> %s)", self.repo_id, self.branch, last, fetched.tip)
                self._event("repo.force_push", previous=last, tip=fetched.tip, branch=self.branch)
            commits = self.mirror.commits_between(last, fetched.tip)
            if self.run_policy == "each":
                for c in commits:
                    base = c.parents[0] if c.parents else None
                    self._process(c, self.mirror.changed_pipelines(base, c.sha), (), request, outcome)
            elif commits:
                change = self.mirror.changed_pipelines(last, fetched.tip)
                self._process(commits[-1], change, commits[:-1], request, outcome)
        started = [r for r in outcome.runs if r not in outcome.rejected]
        if started:
            self.on_runs_created(started)
        return outcome

    def _baseline(self, tip: str, request: SyncRequest, outcome: SyncOutcome) -> None:
        """First sight of the repository: record its tip; run its pipelines only if configured to."""
        info = self.mirror.commit_info(tip)
        pipelines = self.mirror.list_pipelines(tip)
        log.info("repo %s: first sync at %s@%s (%d pipelines)", self.repo_id, self.branch, tip[:12], len(pipelines))
        if self.run_on_first_sync:
            self._process(info, self.mirror.changed_pipelines(None, tip), (), request, outcome)
            return
        results = [self._read(tip, p) for p in pipelines]
        events: list[dict[str, Any]] = []
        with transaction(self.db) as conn:
            events.append(self._record_commit(conn, info, results, validation="baseline"))
            self._advance(conn, tip)
        self._publish(events)
        outcome.commits.append(tip)

    def _process(
        self,
        commit: CommitInfo,
        change: ChangeSet,
        absorbed: Sequence[CommitInfo],
        request: SyncRequest,
        outcome: SyncOutcome,
    ) -> None:
        """Judge one commit (with the commits its push absorbed), record it and start its runs, in one transaction."""
        skip = commit.skip_requested
        selection = self._select(commit, change) if not skip else _Selection(change.changed)
        results = [] if skip else [self._read(commit.sha, p) for p in selection.pipelines]
        new_runs = self._new_runs(commit, results, absorbed, self._attributed(commit.sha, request), selection.problems)
        validation = _validation(skip, results, selection.problems)
        created = self._record(commit, absorbed, results, selection, validation, new_runs)
        outcome.commits.extend([*(c.sha for c in absorbed), commit.sha])
        outcome.runs.extend(run_id for run_id, _ in created)
        outcome.rejected.extend(run_id for run_id, rejected in created if rejected is not None)
        self._log_processed(commit, skip, results, created)

    def _select(self, commit: CommitInfo, change: ChangeSet) -> _Selection:
        """The changed pipelines the commit's `.odin.yml` lets run (and the problems of that file)."""
        selection = select_pipelines(self.mirror, commit.sha, change, branch=self.branch, limits=self.limits)
        if selection.filtered:
            log.info(
                "repo %s commit %s: .odin.yml filters leave out %s",
                self.repo_id,
                commit.sha[:12],
                ", ".join(selection.filtered),
            )
        problems = list(selection.problems)
        if not problems:
            problems.extend(self._schedule_problems(commit.sha))
        return _Selection(selection.pipelines, selection.filtered, problems)

    def _schedule_problems(self, sha: str) -> list[Problem]:
        """What is wrong with the commit's `.odin.yml` `schedules:` (a pipeline missing or invalid, parameters it
        refuses), so a bad schedule is a `file:line:col` problem on the commit that wrote it, not a silent no-op.
        Reads only the pipelines the entries name (each cached by its tree id)."""
        config, _ = read_repo_config(self.mirror, sha, limits=self.limits)
        if config is None or not config.schedules:
            return []
        listed = set(self.mirror.list_pipelines(sha))

        def read(pipeline: str) -> PipelineAt | None:
            return self._read(sha, pipeline) if pipeline in listed else None

        return commit_schedules((), config, read).problems

    def _new_runs(
        self,
        commit: CommitInfo,
        results: Sequence[PipelineAt],
        absorbed: Sequence[CommitInfo],
        request: SyncRequest,
        problems: list[Problem],
    ) -> list[NewRun]:
        """A run for each valid pipeline that can start on its own; why one cannot is added to `problems`. A run
        admission refuses is still made, `rejected`: the run, not the commit, is what a user looks at."""
        new_runs: list[NewRun] = []
        for r in results:
            if not r.ok or r.spec is None:
                continue
            try:
                params = resolve_params(r.spec, {})
                work_path = materialize(self.mirror, commit.sha, r.pipeline, self.trees_dir)
            except ParamError as e:
                problems.append(Problem(f"{r.pipeline}/main.yml", 1, 1, f"cannot start automatically: {e}"))
                continue
            except GitError as e:
                problems.append(Problem(f"{r.pipeline}/main.yml", 1, 1, f"cannot materialise the files: {e.message}"))
                continue
            new_runs.append(
                NewRun(
                    pipeline=r.pipeline,
                    spec=r.spec,
                    trigger=request.trigger,
                    params=params,
                    commit_sha=commit.sha,
                    branch=self.branch,
                    repo_id=self.repo_id,
                    triggered_by=request.by,
                    work_tree=r.tree,
                    work_path=str(work_path),
                    absorbed_commits=[c.sha for c in absorbed],
                    rejected=judge(self.admission, r.spec),
                )
            )
        return new_runs

    def _record(
        self,
        commit: CommitInfo,
        absorbed: Sequence[CommitInfo],
        results: Sequence[PipelineAt],
        selection: _Selection,
        validation: str,
        new_runs: Sequence[NewRun],
    ) -> list[tuple[str, str | None]]:
        """Record the absorbed commits, the commit, its runs and the new `last_seen_sha` in ONE transaction (the
        crash-safety argument of this module), then publish the events. Returns the runs created: (id, why admission
        refused it or None)."""
        created: list[tuple[str, str | None]] = []
        events: list[dict[str, Any]] = []
        with transaction(self.db) as conn:
            hold(conn, self.fence())  # LeadershipLost: another replica leads; nothing recorded, nothing created
            for c in absorbed:
                events.append(self._record_commit(conn, c, [], validation="absorbed", absorbed_by=commit.sha))
            events.append(
                self._record_commit(
                    conn,
                    commit,
                    results,
                    validation=validation,
                    extra=selection.problems,
                    pipelines=selection.pipelines,
                    filtered=selection.filtered,
                )
            )
            for new in new_runs:
                res = create_run(conn, new)
                if res.created:
                    created.append((res.run_id, new.rejected))
            events.extend(run_created_events(conn, [run_id for run_id, _ in created]))
            self._advance(conn, commit.sha)
        self._publish(events)
        return created

    def _log_processed(
        self, commit: CommitInfo, skip: bool, results: Sequence[PipelineAt], created: Sequence[tuple[str, str | None]]
    ) -> None:
        if skip:
            log.info("repo %s: commit %s asks to be skipped; nothing started", self.repo_id, commit.sha[:12])
        problems = [p for r in results for p in r.shown]
        for p in problems[:LOGGED_PROBLEMS]:
            log.warning("repo %s commit %s: %s", self.repo_id, commit.sha[:12], p)
        if len(problems) > LOGGED_PROBLEMS:
            log.warning(
                "repo %s commit %s: and %d more problems (all are on the commit)",
                self.repo_id,
                commit.sha[:12],
                len(problems) - LOGGED_PROBLEMS,
            )
        for run_id, rejected in created:
            if rejected is None:
                log.info("repo %s commit %s: created run %s", self.repo_id, commit.sha[:12], run_id)
            else:
                log.warning("repo %s commit %s: run %s rejected: %s", self.repo_id, commit.sha[:12], run_id, rejected)

    def _read(self, sha: str, pipeline: str) -> PipelineAt:
        return read_pipeline(self.mirror, sha, pipeline, limits=self.limits, validator=self.validator)

    # -- recording --------------------------------------------------------------------------------------------
    def _record_commit(
        self,
        conn: Connection,
        info: CommitInfo,
        results: Sequence[PipelineAt],
        *,
        validation: str,
        extra: Sequence[Problem] = (),
        pipelines: Sequence[str] | None = None,
        absorbed_by: str | None = None,
        filtered: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Record the commit's row and its `commit.seen` event (`store.commits`); returns the event as stored."""
        problems = [p.to_dict() for r in results for p in r.shown] + [p.to_dict() for p in extra]
        seen = SeenCommit(
            repo_id=self.repo_id,
            sha=info.sha,
            branch=self.branch,
            parents=info.parents,
            author_name=info.author_name,
            author_email=info.author_email,
            message=info.message,
            committed_at=info.committed_at,
            validation=validation,
            problems=problems,
            pipelines_changed=list(pipelines if pipelines is not None else [r.pipeline for r in results]),
            absorbed_by=absorbed_by,
            filtered=filtered,
        )
        return record_commit(conn, seen)

    def _publish(self, events: Sequence[EventDict]) -> None:
        """Hand committed events to subscribers (notifiers, live streams); a failing subscriber never fails a sync."""
        for event in events:
            try:
                self.publish(event)
            except Exception:
                log.exception("repo %s: publishing %s failed", self.repo_id, event.get("kind"))

    def _advance(self, conn: Connection, sha: str) -> None:
        if self.further:
            repositories.advance_branch(conn, self.repo_id, self.branch, sha)
        else:
            repositories.advance(conn, self.repo_id, sha)
        self._last_seen = sha

    def _load_state(self) -> None:
        if self.further:
            repositories.ensure_branch(self.db, self.repo_id, self.branch)
            state = repositories.branch_sync_state(self.db, self.repo_id, self.branch)
        else:
            state = repositories.sync_state(self.db, self.repo_id)
        self._last_seen = state.last_seen_sha
        ready = next((c for c in state.conditions if c.get("type") == "Ready"), None)
        if ready:
            self._condition = (ready["status"], ready["reason"], ready["message"])
        self._loaded = True

    def _set_condition(self, status: str, reason: str, message: str) -> None:
        """Record the repository's Ready condition; written (and an event appended) only when it changes."""
        if self._condition == (status, reason, message):
            return
        if status == "False":
            log.warning("repo %s: %s: %s", self.repo_id, reason, message)
        elif self._condition is not None and self._condition[0] == "False":
            log.info("repo %s: reachable again (%s)", self.repo_id, message)
        cond = {"type": "Ready", "status": status, "reason": reason, "message": message, "time": utcnow().isoformat()}
        if self.further:
            event = repositories.record_branch_condition(self.db, self.repo_id, self.branch, cond)
        else:
            event = repositories.record_condition(self.db, self.repo_id, cond)
        self._condition = (status, reason, message)
        self._publish([event])

    def _event(self, kind: str, **data: Any) -> None:
        self._publish([repositories.record_event(self.db, self.repo_id, kind, data)])


@dataclass(frozen=True, slots=True)
class _Selection:
    """Which changed pipelines a commit runs: those its `.odin.yml` allows (all, without one), those it filtered
    out, and the problems found on the way (the caller adds why a run could not start)."""

    pipelines: Sequence[str]
    filtered: Sequence[str] = ()
    problems: list[Problem] = field(default_factory=list)


def _validation(skip: bool, results: Sequence[PipelineAt], problems: Sequence[Problem]) -> str:
    """The commit's verdict: skipped on request, invalid if any pipeline or its starting had a problem, else valid."""
    if skip:
        return "skipped"
    return "invalid" if any(r.problems for r in results) or problems else "valid"
