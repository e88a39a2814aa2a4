"""Starting a run on request: a pipeline at a branch, tag or commit, with parameters, for a user or a system.

The API (`POST /v1/runs`), `odinctl run` and the generic webhook all come through here, so every manual start is
validated, materialised and recorded exactly like an automatic one — only the trigger and who asked differ.
Errors are `RunRejected` subclasses carrying a user-facing message; the API maps them to 4xx once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from odin.controller.admission import GpuCheck, judge
from odin.controller.bus import EventDict
from odin.controller.filters import select_tagged
from odin.controller.git.errors import AmbiguousRef, GitError, InvalidRef, RefNotFound
from odin.controller.git.mirror import Mirror
from odin.controller.pipelines import PipelineAt, materialize, read_pipeline, render_with
from odin.controller.reruns import RerunPlan, RerunRefused, plan_rerun
from odin.controller.store.db import DbEngine, transaction
from odin.controller.store.leadership import Fence, hold
from odin.controller.store.repositories import record_event
from odin.controller.store.runs import Created, LoadedRun, NewRun, create_run, create_runs, run_created_events
from odin.controller.store.schedules import SlotKey, attach_runs, claim_slots
from odin.controller.store.types import utcnow
from odin.controller.validation import Validator
from odin.controller.vocabulary import RunStatus, Trigger
from odin.schema import REPO_CONFIG_FILE, Limits, ParamError, resolve_params
from odin.schema.model import PipelineSpec
from odin.schema.problems import Problem

log = logging.getLogger(__name__)


class RunRejected(Exception):
    """A run cannot be started as asked. `status` is the HTTP status the API answers with."""

    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PipelineNotFound(RunRejected):
    status = 404


class ReferenceNotFound(RunRejected):
    status = 404


class InvalidReference(RunRejected):
    """A ref git would refuse, or an ambiguous commit prefix: refused before any fetch."""

    status = 400


class InvalidPipeline(RunRejected):
    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


class InvalidParams(RunRejected):
    pass


class RepositoryUnavailable(RunRejected):
    status = 503


class RunNotFound(RunRejected):
    status = 404


class RunConflict(RunRejected):
    """The run is in a state that does not allow this (a rerun of a run still going, a cancel of a finished one)."""

    status = 409


@dataclass(frozen=True)
class StartRequest:
    pipeline: str
    ref: str | None = None  # branch, tag, full sha or a unique prefix >= 7; default: the followed branch
    params: Mapping[str, str] = field(default_factory=dict)
    trigger: Trigger = Trigger.MANUAL
    by: str | None = None
    parallelism: int | None = None
    no_cache: bool = False  # run tasks with `cache: true` without looking up earlier runs (keys still recorded)


@dataclass(frozen=True)
class ScheduledStart:
    """A due slot of a pipeline's schedule: which pipeline, which schedule (`<cron>@<zone>`), which instant."""

    pipeline: str
    schedule: str
    slot: datetime
    at: PipelineAt | None = None  # the pipeline as the scheduler read it at the tip (saves reading it again)
    params: tuple[tuple[str, str], ...] = ()  # the schedule's own parameters; the others take their defaults
    branch: str | None = None  # the branch whose tip declares it (the launcher's own branch starts it)


@dataclass(frozen=True)
class RerunRequest:
    """Run a finished run again: at its own commit with its frozen spec (default), or at the branch's tip."""

    run_id: str
    latest: bool = False  # the followed branch's newest commit instead of the run's own
    failed_only: bool = False  # reuse the parent's succeeded tasks
    task: str | None = None  # rerun this task and its descendants, reuse the rest
    params: Mapping[str, str] | None = None  # overrides on top of the parent's parameters
    by: str | None = None
    parallelism: int | None = None
    no_cache: bool = False  # run tasks with `cache: true` without looking up earlier runs (keys still recorded)


class RunLauncher:
    def __init__(
        self,
        db: DbEngine,
        repo_id: int,
        mirror: Mirror,
        *,
        branch: str,
        trees_dir: Path,
        submit: Callable[[str], None],
        validator: Validator | None = None,
        admission: GpuCheck | None = None,
        fence: Callable[[], Fence | None] = lambda: None,
        submit_many: Callable[[Sequence[str], Sequence[EventDict]], None] | None = None,
    ) -> None:
        """`fence`: the leader's epoch, which the scheduler's runs (`start_slots`, the leader's work) are created
        under; runs started on request (any replica's API) are not fenced. `submit`: hand one run created on request
        to the engine. `submit_many`: hand the runs of a schedule tick or a tag, with their events as recorded, at
        once (without it, each goes through `submit`)."""
        self.db = db
        self.fence = fence
        self.repo_id = repo_id
        self.mirror = mirror
        self.branch = branch
        self.trees_dir = trees_dir
        self.submit = submit
        self.submit_many = submit_many
        self.validator = validator
        self.admission = admission  # the executor's `gpu_shortfall`: runs that can never fit are refused (422)

    def resolve(self, ref: str | None) -> str:
        """A ref to a full sha; the followed branch (the default) is fetched first so "latest" means latest. Other
        refs come from the cache, fetched at most once when missing (see `Mirror.resolve_fetching`)."""
        wanted = ref or self.branch
        try:
            if self.mirror.names_branch(wanted):
                try:
                    return self.mirror.fetch().tip
                except GitError as e:
                    log.warning("start: fetch failed (%s); using the cached %s", e.message, self.branch)
            return self.mirror.resolve_fetching(wanted)
        except (InvalidRef, AmbiguousRef) as e:
            raise InvalidReference(e.message) from e
        except RefNotFound as e:
            raise ReferenceNotFound(f"no branch, tag or commit {wanted!r} in the repository ({e.message})") from e
        except GitError as e:
            raise RepositoryUnavailable(f"cannot read the repository: {e.message}") from e

    def read_valid(self, sha: str, pipeline: str) -> PipelineAt:
        """The pipeline at `sha`, or `PipelineNotFound` / `InvalidPipeline` with its problems."""
        if pipeline not in self.mirror.list_pipelines(sha):
            raise PipelineNotFound(
                f"no pipeline {pipeline!r} at {sha[:12]} (a directory with a main.yml or main.yml.jinja2)"
            )
        at = read_pipeline(self.mirror, sha, pipeline, validator=self.validator)
        if at.spec is None or at.problems:
            raise InvalidPipeline(f"pipeline {pipeline!r} is invalid at {sha[:12]}", at.problems)
        return at

    def _with_params(self, at: PipelineAt, given: Mapping[str, str]) -> tuple[PipelineAt, dict[str, str]]:
        """The pipeline a run with `given` parameters runs, and the run's parameters: a `main.yml.jinja2` is rendered
        anew with those it reads (recorded on the run), the rest resolve against the rendered pipeline's `params:`."""
        at, consumed = render_with(self.mirror, at, given, validator=self.validator)
        if at.spec is None or at.problems:
            raise InvalidPipeline(f"pipeline {at.pipeline!r} does not render with these parameters", at.problems)
        rest = {name: value for name, value in given.items() if name not in consumed}
        return at, {**consumed, **_resolve(at.spec, rest)}

    def _materialize(self, sha: str, pipeline: str, tree: str | None = None) -> str:
        """The pipeline's files (`materialize`); with its `tree` id known, a copy already there is used without
        reading git (a schedule tick starting a thousand runs of unchanged pipelines)."""
        if tree is not None and (self.trees_dir / tree).is_dir():
            return str(self.trees_dir / tree)
        try:
            return str(materialize(self.mirror, sha, pipeline, self.trees_dir))
        except GitError as e:
            error = RepositoryUnavailable if e.transient else RunRejected
            raise error(f"cannot prepare the files of {pipeline!r} at {sha[:12]}: {e.message}") from e

    def prepare(self, sha: str, pipelines: Iterable[PipelineAt]) -> None:
        """Write the files of pipelines that schedules will start at `sha` now, ahead of their slots, so that a slot
        costs its runs' rows and not a thousand directories written at that instant (content-addressed: a copy
        already there, made for a push or an earlier slot, is kept). A pipeline whose files cannot be written is left
        to its slot, which reports why."""
        for at in pipelines:
            if at.tree is None or (self.trees_dir / at.tree).is_dir():
                continue
            try:
                materialize(self.mirror, sha, at.pipeline, self.trees_dir)
            except GitError as e:
                log.info("schedule of %s: files not prepared at %s (%s)", at.pipeline, sha[:12], e.message)
            except OSError as e:  # a full disk: the slot tries again, and says why if it still fails
                log.warning("schedule of %s: files not prepared at %s (%s)", at.pipeline, sha[:12], e)

    def start(self, request: StartRequest) -> Created:
        sha = self.resolve(request.ref)
        pipeline = request.pipeline.strip("/")
        at, params = self._with_params(self.read_valid(sha, pipeline), request.params)
        assert at.spec is not None
        self.admit(at.spec)
        work_path = self._materialize(sha, pipeline)
        new = NewRun(
            pipeline=pipeline,
            spec=at.spec,
            trigger=request.trigger,
            params=params,
            commit_sha=sha,
            branch=self.branch if request.ref is None or self.mirror.names_branch(request.ref) else None,
            repo_id=self.repo_id,
            triggered_by=request.by,
            work_tree=at.tree,
            work_path=work_path,
            parallelism=request.parallelism,
            no_cache=request.no_cache,
        )
        with transaction(self.db) as conn:
            created = create_run(conn, new)
        log.info("run %s started by %s (%s) at %s", created.run_id, request.by, request.trigger, sha[:12])
        self.submit(created.run_id)
        return created

    def start_slots(self, sha: str, slots: Sequence[ScheduledStart]) -> list[tuple[ScheduledStart, Created]]:
        """Start the pipelines of due schedule slots at `sha` (the tip of the launcher's branch), each slot at most
        once.

        Every slot is claimed (`store.schedules.claim_slot`) in the transaction that creates its run, so a slot a
        replica or an earlier leader already started is left alone, and a crash between the two leaves neither. One
        transaction for all the slots of a tick, with one fencing check, one multi-row claim and the runs created in
        bulk (`store.runs.create_runs`); with `submit_many` their events are read back in it too and handed over with
        the runs at once: a thousand schedules due at one instant cost a few statements and one commit. A pipeline
        that is invalid at `sha`, or that admission refuses, is logged and skipped; the slot is not claimed (nothing
        ran), and the next slot tries again. Returns the runs created, with their slots."""
        prepared: list[tuple[ScheduledStart, NewRun]] = []
        for due in slots:
            try:
                prepared.append((due, self._scheduled_run(sha, due)))
            except RunRejected as e:
                log.warning("schedule %s of %s: slot %s not started: %s", due.schedule, due.pipeline, due.slot, e)
        if not prepared:
            return []
        created: list[tuple[ScheduledStart, Created]] = []
        with transaction(self.db) as conn:
            hold(conn, self.fence())  # LeadershipLost: another replica leads and schedules; nothing is claimed
            keyed = [(SlotKey(self.repo_id, self.branch, new.pipeline, due.schedule, due.slot), due, new)
                     for due, new in prepared]  # fmt: skip
            claimed = claim_slots(conn, [key for key, _, _ in keyed])
            won = [(key, due, new) for key, due, new in keyed if key in claimed]
            runs = create_runs(conn, [new for _, _, new in won])
            attach_runs(conn, [(key, run.run_id) for (key, _, _), run in zip(won, runs, strict=True)])
            created = [(due, run) for (_, due, _), run in zip(won, runs, strict=True)]
            ids = [run.run_id for _, run in created]
            events = run_created_events(conn, ids) if self.submit_many is not None else []
        for due, run in created:
            log.info("run %s started by schedule %s (slot %s) at %s", run.run_id, due.schedule, due.slot, sha[:12])
        self._hand_over(ids, events)
        return created

    def _hand_over(self, run_ids: Sequence[str], events: Sequence[EventDict]) -> None:
        """Give runs created in one transaction to the engine: all at once with the events read in it
        (`submit_many`), or one by one (`submit`, which reads each run's events)."""
        if self.submit_many is not None:
            if run_ids:
                self.submit_many(run_ids, events)
            return
        for run_id in run_ids:
            self.submit(run_id)

    def start_tagged(self, tag: str, sha: str) -> list[Created]:
        """Start the pipelines at `sha`, the commit a new or moved tag names, that its `.odin.yml` lets run for the
        tag (`filters.select_tagged`: its `tags` filter; an invalid file starts nothing, recorded as a
        `repo.tag_not_started` event on the repository), each once per (tag, commit): the run's `dedupe_key` is the
        tag's, so a replica or an earlier leader that started it already answers instead, and a crash between
        listing the tag and recording it as seen starts nothing twice. A pipeline that is invalid at `sha`, or that
        admission refuses, is logged and skipped. Returns the runs, those started before included."""
        if not self.mirror.has_commit(sha):
            self.resolve(sha)  # the tag was pushed after the last fetch: one fetch brings it (RunRejected if not)
        selection = select_tagged(self.mirror, sha, self.mirror.list_pipelines(sha), tag=tag, limits=Limits())
        if selection.problems:
            shown = "; ".join(str(p) for p in selection.problems[:5])
            log.warning("tag %s: %s at %s is invalid, nothing started: %s", tag, REPO_CONFIG_FILE, sha[:12], shown)
            record_event(self.db, self.repo_id, "repo.tag_not_started", {
                "tag": tag, "commit": sha, "reason": "InvalidRepoConfig",
                "problems": [p.to_dict() for p in selection.problems],
            })  # fmt: skip
            return []
        if selection.filtered:
            log.info("tag %s: .odin.yml filters leave out %s", tag, ", ".join(selection.filtered))
        prepared: list[NewRun] = []
        for pipeline in selection.pipelines:
            try:
                at, params = self._with_params(self.read_valid(sha, pipeline), {})
                assert at.spec is not None
                self.admit(at.spec)
                prepared.append(
                    NewRun(
                        pipeline=pipeline,
                        spec=at.spec,
                        trigger=Trigger.TAG,
                        params=params,
                        commit_sha=sha,
                        tag=tag,
                        repo_id=self.repo_id,
                        triggered_by=f"tag:{tag}",
                        work_tree=at.tree,
                        work_path=self._materialize(sha, pipeline),
                    )
                )
            except RunRejected as e:
                log.warning("tag %s: pipeline %s not started at %s: %s", tag, pipeline, sha[:12], e)
        if not prepared:
            return []
        with transaction(self.db) as conn:
            hold(conn, self.fence())  # LeadershipLost: another replica leads and starts the tag's runs
            created = create_runs(conn, prepared)
            ids = [run.run_id for run in created if run.created]
            events = run_created_events(conn, ids) if self.submit_many is not None else []
        for run_id in ids:
            log.info("run %s started by tag %s at %s", run_id, tag, sha[:12])
        self._hand_over(ids, events)
        return created

    def _scheduled_run(self, sha: str, due: ScheduledStart) -> NewRun:
        pipeline = due.pipeline.strip("/")
        at = due.at if due.at is not None and due.at.sha == sha and due.at.ok else self.read_valid(sha, pipeline)
        at, params = self._with_params(at, dict(due.params))
        assert at.spec is not None
        self.admit(at.spec)
        slot = due.slot.isoformat()
        condition = {
            "type": "Scheduled",
            "status": "True",
            "reason": "ScheduleSlot",
            "message": f"slot {slot} of schedule `{due.schedule}`",
            "slot": slot,
            "schedule": due.schedule,
            "time": utcnow().isoformat(),
        }
        return NewRun(
            pipeline=pipeline,
            spec=at.spec,
            trigger=Trigger.SCHEDULE,
            params=params,
            commit_sha=sha,
            branch=self.branch,
            repo_id=self.repo_id,
            work_tree=at.tree,
            work_path=self._materialize(sha, pipeline, at.tree),
            conditions=[condition],
        )

    def rerun(self, parent: LoadedRun, request: RerunRequest) -> Created:
        """A new run from a finished one (see `odin.controller.reruns` for what is reused). Raises `RunRejected`."""
        parent_id = str(parent.run["id"])
        _check_finished(parent)
        source = self._at_latest(parent, request) if request.latest else self._at_own_commit(parent, request)
        params = _resolve(source.spec, source.given)
        plan = _plan(source.spec, parent, request)
        self.admit(source.spec, skip=plan.reused)
        new = self._rerun_of(parent, request, source, params, plan)
        with transaction(self.db) as conn:
            created = create_run(conn, new)
        log.info(
            "run %s: rerun of %s by %s at %s (%s; reusing %d task(s))",
            created.run_id,
            parent_id,
            request.by,
            (source.sha or "-")[:12],
            source.reason,
            len(plan.reused),
        )
        self.submit(created.run_id)
        return created

    def admit(self, spec: PipelineSpec, *, skip: Collection[str] = ()) -> None:
        """`RunRejected` when a task asks for more GPUs, or a GPU model, than any node has, naming what exists,
        rather than a run whose task waits for ever (`odin.controller.admission`, the same step sync takes for runs
        a push starts). Tasks a rerun reuses are not run again, so not judged."""
        problem = judge(self.admission, spec, skip=skip)
        if problem is not None:
            raise RunRejected(problem)

    def _at_latest(self, parent: LoadedRun, request: RerunRequest) -> _RerunSource:
        """The followed branch's newest commit, its spec and files; the parent's parameters that it still declares."""
        run, parent_id = parent.run, str(parent.run["id"])
        if request.failed_only or request.task is not None:
            raise RunRejected(
                "reusing tasks needs the run's own commit (at another commit their files may differ): "
                "drop `latest`, or rerun everything at the latest commit"
            )
        pipeline = str(run["pipeline"])
        sha = self.resolve(None)
        at = self.read_valid(sha, pipeline)
        assert at.spec is not None
        declared = {p.name for p in at.spec.params}
        given = {k: v for k, v in dict(run["params"] or {}).items() if k in declared} | dict(request.params or {})
        return _RerunSource(
            sha=sha,
            spec=at.spec,
            tree=at.tree,
            given=given,
            work_path=self._materialize(sha, pipeline),
            branch=self.branch,
            reason="LatestCommit",
            message=f"rerun of {parent_id} at the latest commit of {self.branch} ({sha[:12]})",
        )

    def _at_own_commit(self, parent: LoadedRun, request: RerunRequest) -> _RerunSource:
        """The parent's commit and frozen spec, in its own files while they are still there."""
        run, parent_id = parent.run, str(parent.run["id"])
        sha = run["commit_sha"]
        spec = PipelineSpec.from_dict(run["spec"])
        tree = run["work_tree"]
        given = dict(run["params"] or {}) | dict(request.params or {})
        existing = run["work_path"]
        if existing and Path(existing).is_dir():
            work_path = str(existing)
        elif sha:
            work_path = self._materialize(sha, str(run["pipeline"]))
        else:
            raise RunRejected(f"run {parent_id} has neither a commit nor its files any more; it cannot be rerun")
        where = sha[:12] if sha else "its files"
        return _RerunSource(
            sha=sha,
            spec=spec,
            tree=tree,
            given=given,
            work_path=work_path,
            branch=run["branch"],
            reason="OriginalCommit",
            message=f"rerun of {parent_id} at its own commit ({where})",
        )

    def _rerun_of(
        self,
        parent: LoadedRun,
        request: RerunRequest,
        source: _RerunSource,
        params: Mapping[str, str],
        plan: RerunPlan,
    ) -> NewRun:
        """The new run, with a `Rerun` condition saying which commit it took and what it reused."""
        run, parent_id = parent.run, str(parent.run["id"])
        condition: dict[str, Any] = {
            "type": "Rerun",
            "status": "True",
            "reason": source.reason,
            "message": source.message,
            "parent_run": parent_id,
            "reused": list(plan.reused),
            "time": utcnow().isoformat(),
        }
        return NewRun(
            pipeline=str(run["pipeline"]),
            spec=source.spec,
            trigger=Trigger.RERUN,
            params=params,
            commit_sha=source.sha,
            branch=source.branch,
            repo_id=self.repo_id,
            triggered_by=request.by,
            work_tree=source.tree,
            work_path=source.work_path,
            parent_run=parent_id,
            run_path_id=(run.get("run_path_id") or parent_id) if plan.shares_run_path else None,
            parallelism=request.parallelism or run.get("parallelism"),
            initial_tasks=plan.initial_tasks,
            conditions=[condition],
            no_cache=request.no_cache,
        )


@dataclass(frozen=True)
class _RerunSource:
    """Where a rerun runs: its commit, spec and files, the parameters it is given before resolving, and why
    (`reason`, `message`: the `Rerun` condition's)."""

    sha: str | None
    spec: PipelineSpec
    tree: str | None
    given: Mapping[str, str]
    work_path: str
    branch: str | None
    reason: str
    message: str


def _check_finished(parent: LoadedRun) -> None:
    run = parent.run
    if not RunStatus(run["status"]).terminal:
        raise RunConflict(f"run {run['id']} is still {run['status']}; cancel it or wait for it to finish")


def _resolve(spec: PipelineSpec, given: Mapping[str, str]) -> dict[str, str]:
    try:
        return resolve_params(spec, dict(given))
    except ParamError as e:
        raise InvalidParams(str(e)) from e


def _plan(spec: PipelineSpec, parent: LoadedRun, request: RerunRequest) -> RerunPlan:
    """Which of the parent's tasks the rerun reuses (`odin.controller.reruns`)."""
    try:
        return plan_rerun(
            spec,
            str(parent.run["id"]),
            {t["name"]: t for t in parent.tasks},
            failed_only=request.failed_only,
            task=request.task,
        )
    except RerunRefused as e:
        raise (RunConflict if e.status == 409 else RunRejected)(e.message) from e
