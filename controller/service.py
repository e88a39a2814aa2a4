"""The controller as one object: store, executor, engine, pollers and the leader lock, wired from `Settings`.

`odin serve` builds one `Controller`, hands it to the API, and starts it. Every replica can serve the API; the
scheduling half (engine and pollers) starts only once this replica holds the leader lock, and stops if it loses it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from odin.controller import secret_files
from odin.controller.artifacts.retention import RetentionPolicy
from odin.controller.artifacts.settings import current_settings, open_store
from odin.controller.artifacts.store import ArtifactStore
from odin.controller.branches import BranchFollowers
from odin.controller.bus import EventBus, EventDict
from odin.controller.engine.cache import store_outputs_present
from odin.controller.engine.decide import RetryPolicy
from odin.controller.engine.loop import Engine
from odin.controller.executors.base import Executor
from odin.controller.executors.sandbox import Sandbox, SandboxMode, resolve_sandbox
from odin.controller.executors.task_user import TaskUser, check_reachable, resolve_task_user
from odin.controller.git.credentials import CredentialRefs, Credentials, CredentialSource
from odin.controller.git.errors import SecretUnavailable
from odin.controller.git.mirror import Mirror
from odin.controller.git.models import WorkLimits
from odin.controller.git.urls import UrlKind, parse_remote_url, redact_url
from odin.controller.gpu_sampler import GpuSampler
from odin.controller.gpu_usage import IdlePolicy
from odin.controller.gpus import GpuProbe, GpuSampleSource
from odin.controller.history_retention import HistoryPolicy
from odin.controller.launcher import RerunRequest, RunLauncher, RunNotFound, RunRejected, StartRequest
from odin.controller.leader import LeaderLock, leader_lock_for
from odin.controller.metrics import TaskDurations
from odin.controller.poller import RepoPoller
from odin.controller.pulls import PullOutcome, PullRequest, PullRequests
from odin.controller.repo_specs import matches
from odin.controller.retention import RetentionSweeper
from odin.controller.scheduler import Scheduler
from odin.controller.secrecy import create_private_file, secure_data_dir
from odin.controller.settings import Settings
from odin.controller.store import queueing, versions
from odin.controller.store.db import DbEngine, StoreError, create_db_engine, migrate
from odin.controller.store.leadership import Fence
from odin.controller.store.repo_records import FOLLOWED_FIELDS, RepoRecord, registered, registration
from odin.controller.store.repositories import follow_repository, record_condition
from odin.controller.store.runs import Created, load_runs, request_cancel, run_events
from odin.controller.store.types import utcnow
from odin.controller.store.wakeups import WakeListener, WakeSender, read_sync, supports_wakeups
from odin.controller.sync import RepoSync, SyncOutcome, SyncRequest
from odin.controller.tags import TagFollower
from odin.controller.tracking import TrackingSettings, open_run_tracking
from odin.controller.validation import Validator
from odin.controller.vocabulary import Trigger

log = logging.getLogger(__name__)

REPOS_REFRESH = 5.0
"""Seconds between looks at the registered repositories: added, changed, disabled and removed ones are picked up
within this (at once on the replica that served the API request). A look reads the registrations' version (one row,
`store.versions`) and reads every registration only when it moved (`Controller.refresh_if_changed`)."""

REPOS_FULL_REFRESH = 60.0
"""Seconds after which a look reads every registration even though the version did not move: the safety net for a
change whose writer did not move it (a replica of an older Odin during a rolling upgrade, a row edited by hand)."""


def make_executor(
    settings: Settings,
    task_user: TaskUser | None = None,
    gpus: GpuProbe | None = None,
    sandbox: Sandbox | None = None,
) -> Executor:
    """The executor named by `ODIN_EXECUTOR`; the local one allocates this machine's GPUs from `gpus` and starts
    its tasks in `sandbox` (`ODIN_LOCAL_SANDBOX`)."""
    if settings.executor == "kubernetes":
        from odin.controller.executors.kubernetes import KubernetesExecutor

        return KubernetesExecutor.from_settings(settings)
    from odin.controller.executors.local import LocalExecutor

    return LocalExecutor(
        settings.data_dir,
        root_path=settings.effective_root_path(),
        kill_grace=settings.kill_grace,
        task_user=task_user,
        gpus=gpus,
        sandbox=sandbox,
    )


def _note_secret_files(settings: Settings) -> None:
    """Tell the sandbox about the secret files the settings name (`odin.controller.secret_files`), and the ones
    Odin's libraries would find by themselves (whichever features are on: a library reads its defaults whenever it
    is used, and they are credentials of Odin's user either way). Artifact settings that do not validate are left
    out: the store refuses to open with them, so their files are never read."""
    try:
        artifacts = current_settings()
    except ValueError:
        artifacts = None
    secret_files.note_settings(settings, artifacts)
    secret_files.note_library_defaults()


def work_limits(settings: Settings) -> WorkLimits | None:
    """The largest pipeline directory copied into a run's working tree. The local executor's caps; on Kubernetes
    the directory travels in ConfigMaps, capped by `kube_work_max_bytes` when the run is prepared."""
    if settings.executor != "local":
        return None
    return WorkLimits(settings.local_work_max_files, settings.local_work_max_bytes)


def credentials_ref(settings: Settings) -> str | None:
    """What the store may know about the repository's credentials: where they come from, never what they are."""
    if settings.git_token is not None:
        token = settings.git_token.get_secret_value()
        return token if token.startswith(("env:", "file:")) else "env:ODIN_GIT_TOKEN"
    if settings.git_ssh_key:
        key = settings.git_ssh_key
        return key if key.startswith(("env:", "file:")) else f"file:{key}"
    return None


def git_credentials(settings: Settings) -> CredentialSource | None:
    """Credentials for `ODIN_REPO`: a token (or a reference env:/file: to one, read again when its file changes), or
    an ssh key file. Raises `SecretUnavailable` when a reference does not resolve now."""
    if settings.git_token is not None:
        token = settings.git_token.get_secret_value()
        if token.startswith(("env:", "file:")):
            return _checked(CredentialRefs(token_ref=token))
        return Credentials.from_token(token)
    ref = credentials_ref(settings)
    return _checked(CredentialRefs(ssh_key_ref=ref)) if ref else None


def record_credentials(url: str, ref: str | None, *, allow_http: bool = False) -> CredentialRefs | None:
    """Credentials of a registered repository from its reference: an SSH key for ssh and scp-like URLs, a token
    otherwise, resolved again at each connection when the secret changed (a rotated `file:` takes effect without a
    restart). Raises `SecretUnavailable` (the reference does not resolve now) or `ValueError`."""
    if ref is None:
        return None
    if parse_remote_url(url, allow_insecure_http=allow_http).kind in (UrlKind.SSH, UrlKind.SCP):
        return _checked(CredentialRefs(ssh_key_ref=ref))
    return _checked(CredentialRefs(token_ref=ref))


def _checked(refs: CredentialRefs) -> CredentialRefs:
    """`refs`, once they resolved: a registration whose secret is missing is reported at once, not at its first
    fetch."""
    refs.current()
    return refs


def _fingerprint(record: RepoRecord) -> tuple[object, ...]:
    """What a followed repository is built from: a change to any of it rebuilds its mirror, sync and poller (the
    writes that change one of these fields move the registrations' version: `repo_records.FOLLOWED_FIELDS`)."""
    return tuple(getattr(record, field) for field in FOLLOWED_FIELDS)


@dataclass
class FollowedRepo:
    id: int
    name: str
    url: str
    branch: str
    mirror: Mirror
    sync: RepoSync
    poller: RepoPoller
    launcher: RunLauncher
    validator: Validator
    scheduler: Scheduler
    branches: tuple[str, ...] = ()  # the branch patterns followed (the own `branch` among them)
    webhook_secret_ref: str | None = None
    credentials_ref: str | None = None  # a registered repository's (env:/file:); its commit statuses' token too
    origin: str = "settings"  # or "api": registered through /v1/repos (refreshed from the store)
    tag_patterns: tuple[str, ...] = ()  # the tag patterns followed (controller/tags.py); () follows no tag
    followers: BranchFollowers | None = None  # the further branches the patterns match; None: only `branch`
    fingerprint: tuple[object, ...] = ()
    pull_requests: str = "off"  # which pull requests run: off, same-repo, all (controller/pulls.py)
    pr_approvers: tuple[str, ...] = ()  # provider logins whose `/retest` comments are obeyed
    run_policy: str = "latest"  # `latest`: a pull request's new head cancels its older head's runs
    pulls: PullRequests | None = None  # runs the pipelines of its pull requests' heads


class Controller:
    def __init__(
        self,
        settings: Settings,
        *,
        executor: Executor | None = None,
        db: DbEngine | None = None,
        gpus: GpuProbe | None = None,
        gpu_samples: GpuSampleSource | None = None,
    ) -> None:
        """`gpus`: this machine's GPUs (Midgard's in-process collection, given by `odin serve`): the local executor
        allocates them and runs are admitted against them. None: GPU-unaware, `num_gpus` ignored locally.
        `gpu_samples`: readings of those GPUs with their processes' tasks: running tasks' GPU usage is sampled
        (`gpu_sampler.py`) on the leader. None: no usage is recorded."""
        self.settings = settings
        # This machine's GPUs matter to the local executor only; admission asks the executor in either case
        # (`Executor.gpu_shortfall`: this machine, or the cluster's Node objects).
        self.gpus = gpus if settings.executor == "local" else None
        # Raises TaskUserError (a clear start-up error) for a task user Odin cannot switch to.
        task_user = resolve_task_user(settings.local_task_user) if settings.executor == "local" else None
        secure_data_dir(settings.data_dir, traversable=task_user is not None)
        if task_user is not None:
            check_reachable(task_user, settings.data_dir)
        # Raises SandboxUnavailable for ODIN_LOCAL_SANDBOX=landlock without Landlock (a start-up error).
        self.sandbox: Sandbox | None = None
        self.sandbox_missing = ""  # why there is no sandbox when `auto` found none ("" when off or in force)
        if settings.executor == "local":
            _note_secret_files(settings)
            self.sandbox, self.sandbox_missing = resolve_sandbox(
                SandboxMode(settings.local_sandbox), settings.data_dir, secret_files.paths
            )
        if db is None and settings.database_url is None:
            create_private_file(settings.data_dir / "odin.db")  # before SQLite creates it world-readable
        self.db = db or create_db_engine(settings.effective_database_url())
        migrate(self.db)
        # Before anything that writes under its fence (`_fence`): the engine, the sync and the scheduler.
        self._lock: LeaderLock = leader_lock_for(self.db, settings.data_dir, lease=settings.leader_lease)
        queueing.configure(self.db, max_active_runs=settings.max_active_runs)  # every path creating runs obeys it
        self.bus = EventBus()
        self.bus.subscribe(TaskDurations())
        self.executor = executor or make_executor(settings, task_user, self.gpus, self.sandbox)
        # MLflow (ODIN_MLFLOW_*): None when off. It mirrors the bus's events on its own thread, on the leader only.
        self.tracking = open_run_tracking(self.db, self.bus, TrackingSettings())
        self.engine = Engine(
            self.db,
            self.executor,
            bus=self.bus,
            policy=RetryPolicy(base=settings.retry_backoff, maximum=settings.retry_backoff_max),
            max_active_tasks=settings.max_active_tasks,
            default_parallelism=settings.parallelism,
            outputs_present=store_outputs_present(_store_opener(settings)),
            task_env=self.tracking.task_env if self.tracking is not None else None,
            fence=self._fence,
        )
        self.gpu_sampler: GpuSampler | None = None
        if gpu_samples is not None and settings.executor == "local":
            self.gpu_sampler = GpuSampler(
                self.db,
                self.executor,
                gpu_samples,
                interval=settings.gpu_sample_interval,
                policy=IdlePolicy(settings.gpu_idle_utilization, settings.gpu_idle_after),
                publish=self.bus.publish,
            )
        self.validator = Validator(workers=settings.validation_workers, budget=settings.validation_timeout)
        # Replaced whole, never changed in place, so readers may iterate it without the lock.
        self.repos: dict[str, FollowedRepo] = {}
        self._repos_lock = threading.RLock()
        self._polling = False  # the repositories' pollers run (this replica leads); guarded by _repos_lock
        if settings.repo:
            self.repos[settings.repo_name] = self._follow(settings)
        self._refresher: threading.Thread | None = None
        # What the last full read of the registrations followed (guarded by _repos_lock): the version read before
        # its rows (None: none yet), and when (time.monotonic()).
        self._registrations_seen: int | None = None
        self._full_read_at = 0.0
        # Registrations that could not be followed (credentials unresolved, invalid): tried again at every look,
        # one row each, since nothing moves the version when a referenced file or variable appears.
        self._unfollowable: set[str] = set()
        self.refresh_repositories()
        self.retention = _retention_sweeper(self.db, settings)
        # Replicas that do not lead wake the one that does (Postgres LISTEN/NOTIFY; nothing to wake on SQLite).
        self._wake_sender = WakeSender(self.db) if supports_wakeups(self.db) else None
        self.wake_listener = WakeListener(self.db, self._on_wake) if self._wake_sender is not None else None
        self._leading = threading.Event()
        self._stopping = threading.Event()
        self._elector: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._elector = threading.Thread(target=self._elect, name="odin-leader", daemon=True)
        self._elector.start()
        self._refresher = threading.Thread(target=self._refresh_loop, name="odin-repos", daemon=True)
        self._refresher.start()

    def wait_leading(self, timeout: float | None = None) -> bool:
        return self._leading.wait(timeout)

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    def drain(self) -> None:
        """Stop taking work at once (SIGTERM): the engine starts no task or run from now on; running tasks are
        still watched, and followed logs end so that no request holds the server up. Safe in a signal handler."""
        self.engine.drain()
        self.executor.end_follows()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for this replica's running tasks to end; False if some still run after `timeout` seconds."""
        return not self._leading.is_set() or self.engine.wait_idle(timeout)

    def stop(self) -> None:
        self.engine.drain()
        self._stopping.set()
        if self._elector is not None:
            self._elector.join(10)
        if self._refresher is not None:
            self._refresher.join(10)
        self._stop_scheduling()
        if self.tracking is not None:
            self.tracking.stop()
        self.executor.shutdown()
        self.validator.close()
        self._lock.release()
        self.db.dispose()

    def _fence(self) -> Fence | None:
        """The leadership epoch the engine's, the sync's and the scheduler's writes are conditional on."""
        return self._lock.fence

    def _elect(self) -> None:
        """Follow: try to lead every `retry` seconds. Lead: renew the lease every third of it, and step down when it
        is lost or the store refused a write of this leadership (the engine is fenced)."""
        retry, renew = self._lease_intervals()
        while not self._stopping.is_set():
            if self._leading.is_set():
                if self.engine.fenced or not self._lock.held():
                    log.error("leadership lost: stopping the engine and the pollers")
                    self._stop_scheduling()
                    self._lock.release()
            else:
                try:
                    got = self._lock.try_acquire()
                except Exception as e:
                    log.warning("leader election: cannot reach the store (%s); retrying", e)
                    got = False
                if got and not self._stopping.is_set():
                    fence = self._lock.fence
                    epoch = fence.epoch if fence is not None else 0
                    log.info("this replica is the leader (epoch %d): starting the engine and the pollers", epoch)
                    self._start_scheduling()
            self._stopping.wait(renew if self._leading.is_set() else retry)

    def _lease_intervals(self) -> tuple[float, float]:
        """(how often a follower tries to lead, how often the leader renews its lease), from `ODIN_LEADER_LEASE`."""
        lease = self.settings.leader_lease
        return min(2.0, lease / 4), lease / 3

    def _start_scheduling(self) -> None:
        if self.tracking is not None:
            self.tracking.start()  # subscribed before the engine publishes anything
        self.engine.start()
        # The engine's recovery can outlast the lease (many runs, a slow store): keep renewing while it reads.
        _, renew = self._lease_intervals()
        deadline = time.monotonic() + 60
        while not self.engine.wait_ready(renew) and time.monotonic() < deadline:
            if not self._lock.held():
                break  # the elector's next check stops what was started; the fence refuses its writes meanwhile
        if self.gpu_sampler is not None:
            self.gpu_sampler.start()
        with self._repos_lock:
            for repo in self.repos.values():
                _start_repo(repo)
            self._polling = True
        self.retention.start()
        if self.wake_listener is not None:
            self.wake_listener.start()
        self._leading.set()

    def _stop_scheduling(self) -> None:
        if not self._leading.is_set():
            return
        if self.wake_listener is not None:
            self.wake_listener.stop()
        with self._repos_lock:
            self._polling = False
            for repo in self.repos.values():
                _stop_repo(repo)
        self.retention.stop()
        if self.gpu_sampler is not None:
            self.gpu_sampler.stop()
        self.engine.stop()
        self._leading.clear()

    # -- repositories ------------------------------------------------------------------------------------------
    def _follow(self, settings: Settings) -> FollowedRepo:
        """The repository `ODIN_REPO` names, registered (or updated) in the store under `ODIN_REPO_NAME`."""
        assert settings.repo is not None
        url = redact_url(settings.repo)
        repo_id = self._upsert_repo(settings, url)
        followed = self._build(
            repo_id,
            settings.repo_name,
            settings.repo,
            branch=settings.branch,
            credentials=git_credentials(settings),
            poll_interval=settings.poll_interval,
            run_policy=settings.run_policy,
        )
        followed.pull_requests = settings.pull_requests
        followed.pr_approvers = tuple(settings.pr_approvers)
        return followed

    def _follow_record(self, record: RepoRecord) -> FollowedRepo:
        """A repository registered through the API. Raises `SecretUnavailable` or `ValueError`."""
        followed = self._build(
            record.id,
            record.name,
            record.url,
            branch=record.branch,
            credentials=record_credentials(record.url, record.credentials_ref, allow_http=self.settings.git_allow_http),
            poll_interval=record.poll_interval,
            run_policy=record.run_policy,
            patterns=record.branches,
            tag_patterns=record.tags,
        )
        followed.webhook_secret_ref = record.webhook_secret_ref
        followed.credentials_ref = record.credentials_ref
        for ref in (record.webhook_secret_ref, record.credentials_ref):  # closed to local tasks from now on
            secret_files.note_reference(ref)
        followed.pull_requests = record.pull_requests
        followed.pr_approvers = record.pr_approvers
        followed.origin = "api"
        followed.fingerprint = _fingerprint(record)
        return followed

    def _build(
        self,
        repo_id: int,
        name: str,
        remote: str,
        *,
        branch: str,
        credentials: CredentialSource | None,
        poll_interval: float,
        run_policy: str,
        patterns: tuple[str, ...] = (),
        tag_patterns: tuple[str, ...] = (),
    ) -> FollowedRepo:
        """The mirror, sync, poller, launcher and scheduler of one repository (and of the further branches its
        patterns match, found as its poller goes)."""
        settings = self.settings

        def mirror_of(on: str) -> Mirror:
            return Mirror(remote, settings.git_cache_dir, branch=on, credentials=credentials,
                          work_limits=work_limits(settings), allow_insecure_http=settings.git_allow_http)  # fmt: skip

        def sync_of(on: str, mirror: Mirror, *, further: bool) -> RepoSync:
            return RepoSync(
                self.db,
                repo_id,
                mirror,
                branch=on,
                trees_dir=settings.trees_dir,
                run_policy=run_policy,
                run_on_first_sync=settings.run_on_first_sync,
                on_runs_created=self._submit_runs,
                publish=self.bus.publish,
                validator=self.validator,
                admission=self.executor.gpu_shortfall,
                further=further,
                fence=self._fence,
            )

        mirror = mirror_of(branch)
        launcher = self._launcher(repo_id, mirror, branch, fenced=True)
        scheduler = Scheduler(self.db, repo_id, mirror, launcher, branch=branch, validator=self.validator)
        followers: BranchFollowers | None = None
        if any(p != branch for p in patterns):

            def schedule_on(on: str, poller: RepoPoller) -> None:
                scheduler.follow(on, poller.sync.mirror, self._launcher(repo_id, poller.sync.mirror, on, fenced=True))

            followers = BranchFollowers(
                repo_id=repo_id,
                primary=branch,
                patterns=patterns,
                mirror=mirror,
                make=lambda on: RepoPoller(sync_of(on, mirror_of(on), further=True), interval=poll_interval),
                on_follow=schedule_on,
                on_unfollow=scheduler.unfollow,
                mirror_of=mirror_of,
            )
        tags = TagFollower(self.db, repo_id, patterns=tag_patterns, mirror=mirror, launcher=launcher)
        poller = RepoPoller(
            sync_of(branch, mirror, further=False),
            interval=poll_interval,
            after_sync=_after_sync(followers, tags if tag_patterns else None),
        )
        url = redact_url(remote)
        followed = FollowedRepo(repo_id, name, url, branch, mirror, poller.sync, poller, launcher, self.validator,
                                scheduler)  # fmt: skip
        followed.branches = tuple(patterns) or (branch,)
        followed.run_policy = run_policy
        followed.pulls = PullRequests(
            self.db,
            repo_id,
            mirror,
            trees_dir=settings.trees_dir,
            run_policy=run_policy,
            submit=self._submit_published,
            cancel=lambda run_id, by: self.cancel(run_id, by=by),
            publish=self.bus.publish,
            validator=self.validator,
            admission=self.executor.gpu_shortfall,
        )
        followed.followers = followers
        followed.tag_patterns = tuple(tag_patterns)
        return followed

    def refresh_repositories(self) -> None:
        """Follow the repositories registered through the API as the store has them now: start the new and the
        changed ones (on the leader), stop the changed, disabled and removed ones. A registration whose credentials
        do not resolve is reported on the repository (Ready=False) and tried again at the next refresh. Reads every
        registration; the periodic look is `refresh_if_changed`."""
        with self._repos_lock:  # the read too: an older snapshot applied after a newer one would undo a change
            # The version before the rows: a change committed between the two reads is in the rows and, its version
            # being newer than the one kept, read again at the next look; never missed.
            version = versions.current(self.db, versions.REGISTRATIONS)
            records = {r.id: r for r in registered(self.db)}
            current = dict(self.repos)
            live = {f.id: f for f in current.values() if f.origin == "api"}
            self._unfollowable.clear()
            for repo_id in [*live, *(i for i in records if i not in live)]:
                self._reconcile(current, live.get(repo_id), records.get(repo_id))
            self.repos = current
            self._registrations_seen = version
            self._full_read_at = time.monotonic()

    def refresh_if_changed(self) -> bool:
        """The periodic look (every `REPOS_REFRESH` seconds): read the registrations' version, one row, and follow
        every registration as `refresh_repositories` does only when it moved since the last full read (another
        replica registered, changed or removed one) or that read is `REPOS_FULL_REFRESH` seconds old; otherwise
        only the registrations that could not be followed are tried again, one row each. True when every
        registration was read."""
        with self._repos_lock:
            due = self._registrations_seen is None or time.monotonic() - self._full_read_at >= REPOS_FULL_REFRESH
            if due or versions.current(self.db, versions.REGISTRATIONS) != self._registrations_seen:
                self.refresh_repositories()
                return True
            for name in sorted(self._unfollowable):
                self.refresh_repository(name)
            return False

    def refresh_repository(self, name: str) -> None:
        """Follow one registration's change now (this replica served its `POST`, `PATCH` or `DELETE`): only that
        repository is read from the store and started, rebuilt or stopped, so registering the 500th costs what the
        first did and no other repository's poller is touched. The periodic `refresh_repositories` still picks up
        what other replicas changed."""
        with self._repos_lock:  # the read too, as in refresh_repositories
            record = registration(self.db, name)
            if record is None:
                self._unfollowable.discard(name)
            current = dict(self.repos)
            followed = current.get(name)
            self._reconcile(current, followed if followed is not None and followed.origin == "api" else None, record)
            self.repos = current

    def _reconcile(
        self, current: dict[str, FollowedRepo], followed: FollowedRepo | None, record: RepoRecord | None
    ) -> None:
        """Bring one registered repository in `current` in line with its `record` (None: no longer followed): left
        alone when unchanged, stopped when changed or gone, followed (and started on the leader) when new or
        changed. Caller holds `_repos_lock`."""
        if followed is not None:
            if record is not None and _fingerprint(record) == followed.fingerprint:
                return
            _stop_repo(followed)
            del current[followed.name]
            log.info(
                "repository %s: %s", followed.name, "changed; following it anew" if record else "no longer followed"
            )
        if record is None:
            return
        try:
            new = self._follow_record(record)
        except (SecretUnavailable, ValueError) as e:
            unusable = isinstance(e, SecretUnavailable)
            message = e.message if isinstance(e, SecretUnavailable) else str(e)
            self._unfollowable.add(record.name)
            self._not_ready(record, "CredentialsUnavailable" if unusable else "Invalid", message)
            return
        self._unfollowable.discard(record.name)
        current[record.name] = new
        if self._polling:
            _start_repo(new)
        log.info("repository %s: following %s (%s)", record.name, record.url, ", ".join(record.branches))

    def _not_ready(self, record: RepoRecord, reason: str, message: str) -> None:
        ready = next((c for c in record.conditions if c.get("type") == "Ready"), None)
        if ready is not None and (ready.get("status"), ready.get("reason"), ready.get("message")) == (
            "False",
            reason,
            message,
        ):
            return
        log.warning("repository %s cannot be followed: %s", record.name, message)
        cond = {"type": "Ready", "status": "False", "reason": reason, "message": message}
        self.bus.publish(record_condition(self.db, record.id, {**cond, "time": utcnow().isoformat()}))

    def _refresh_loop(self) -> None:
        while not self._stopping.wait(REPOS_REFRESH):
            try:
                self.refresh_if_changed()
            except StoreError as e:
                log.warning("cannot read the registered repositories (%s); retrying", e)
            except Exception:
                log.exception("refreshing the followed repositories failed; retrying")

    def _upsert_repo(self, settings: Settings, url: str) -> int:
        followed = follow_repository(
            self.db,
            settings.repo_name,
            url=url,
            branch=settings.branch,
            poll_interval=settings.poll_interval,
            run_policy=settings.run_policy,
            credentials_ref=credentials_ref(settings),
            retention_keep_runs=current_settings().keep_runs,
            retention_keep_days=current_settings().keep_days,
        )
        if followed.reset:
            name, branch = settings.repo_name, settings.branch
            log.warning("repository %r now follows %s@%s; resetting its baseline", name, url, branch)
        return followed.repo_id

    def repo(self, name_or_id: str | int | None = None) -> FollowedRepo:
        if name_or_id is None:
            return next(iter(self.repos.values()))
        for r in self.repos.values():
            if name_or_id in (r.name, r.id):
                return r
        raise KeyError(name_or_id)

    def start_run(self, request: StartRequest, repo: str | int | None = None) -> Created:
        """Start a pipeline at a ref on request (API, odinctl, generic webhook). Raises `RunRejected`. A ref that
        names a further branch the repository follows (`release/1`) starts there, and the run records it."""
        followed = self.repo(repo)
        return self._launcher_for(followed, request.ref).start(request)

    def _launcher_for(self, followed: FollowedRepo, ref: str | None) -> RunLauncher:
        """The repository's launcher, or one on the further branch `ref` names (built on demand: cheap)."""
        if ref is None or followed.followers is None:
            return followed.launcher
        name = ref.strip().removeprefix("refs/heads/").removeprefix("origin/")
        # by the patterns, not by this replica's pollers: a follower (no pollers) starts runs on release/1 too
        mirror = followed.followers.mirror_for(name)
        if mirror is None:
            return followed.launcher
        return self._launcher(followed.id, mirror, name, fenced=False)

    def _launcher(self, repo_id: int, mirror: Mirror, branch: str, *, fenced: bool) -> RunLauncher:
        """A launcher on one branch of a repository; `fenced`: its scheduled and tag runs are created only under
        this replica's leadership epoch (runs started on request, on any replica, are not)."""
        return RunLauncher(
            self.db,
            repo_id,
            mirror,
            branch=branch,
            trees_dir=self.settings.trees_dir,
            submit=self._submit_run,
            validator=self.validator,
            admission=self.executor.gpu_shortfall,
            fence=self._fence if fenced else lambda: None,
            submit_many=self._submit_created if fenced else None,
        )

    def rerun(self, request: RerunRequest) -> Created:
        """Run a finished run again (see `RerunRequest`). Raises `RunRejected` (404 for an unknown run)."""
        loaded = load_runs(self.db, [request.run_id])
        if not loaded:
            raise RunNotFound(f"no run {request.run_id!r}")
        parent = loaded[0]
        repo_id = parent.run.get("repo_id")
        try:
            repo = self.repo(repo_id) if repo_id is not None else None
        except KeyError:
            repo = None
        if repo is None:
            raise RunRejected(
                f"run {request.run_id} was not started from a repository this server follows; it cannot be rerun here"
            )
        return repo.launcher.rerun(parent, request)

    def pull_request(
        self,
        repo: str | int,
        pr: PullRequest,
        *,
        by: str,
        withheld: bool,
        forks: bool = False,
        retest: bool = False,
        pipeline: str | None = None,
    ) -> PullOutcome:
        """Run a pull request's head (webhooks; controller/pulls.py). Raises `PullRequestRejected` or
        `PullRequestUnavailable`. Like a run started through the API, on any replica (the leader's engine is woken)."""
        followed = self.repo(repo)
        assert followed.pulls is not None
        return followed.pulls.run(pr, by=by, retest=retest, pipeline=pipeline, withheld=withheld, forks=forks)

    def cancel(self, run_id: str, *, by: str | None = None) -> bool:
        """Ask a run to stop; False when it does not exist or is already finished."""
        flagged = request_cancel(self.db, run_id, by=by)
        if flagged:
            self._announce(run_id, "run.cancel_requested")
            self.engine.cancel_flagged(run_id)
        return flagged

    def request_sync(
        self,
        repo: str | int | None = None,
        request: SyncRequest | None = None,
        *,
        branch: str | None = None,
        tag: str | None = None,
    ) -> bool:
        """Ask for a sync now (webhooks, `odinctl`). Runs on the leader's poller thread; False on a replica that is
        not the leader: its pollers are stopped, so it wakes the leader instead (on Postgres), naming the ref (the
        pushed `branch`, or `tag`; neither: the repository's own branch), so that the leader wakes the poller that
        follows it; that sync then runs at once, without `on_done`; the leader's next poll is the fallback."""
        followed = self.repo(repo)
        poller = followed.poller
        ref = f"refs/tags/{tag}" if tag is not None else f"refs/heads/{followed.branch}"
        if branch is not None and branch != followed.branch and followed.followers is not None:
            # a further branch: its own poller, or (not followed yet) the own one, whose sync then looks for it
            poller = followed.followers.poller(branch) or followed.poller
            ref = f"refs/heads/{branch}"
        if poller.request(request):
            return True
        if self._wake_sender is not None and not self._leading.is_set():
            wanted = request or SyncRequest()
            self._wake_sender.sync(followed.id, ref=ref, trigger=str(wanted.trigger), by=wanted.by)
        return False

    def _on_wake(self, message: dict[str, object]) -> None:
        """A follower's wake-up (on the listener's thread): sync the poller(s) following a ref, or look at a run,
        now."""
        wake, run_id = read_sync(message), message.get("run")
        if wake is not None:
            try:
                followed = self.repo(wake.repo_id)
            except KeyError:
                log.warning("wake-up for repository %s, which this replica does not follow", wake.repo_id)
                return
            known = Trigger(wake.trigger) if wake.trigger is not None and wake.trigger in set(Trigger) else Trigger.POLL
            pollers = pollers_following(followed, wake.ref)
            if not pollers:
                log.debug("wake-up for %s of repository %s, which no poller here follows; ignored", wake.ref,
                          followed.name)  # fmt: skip
            for poller in pollers:
                poller.request(SyncRequest(trigger=known, by=wake.by))
        elif isinstance(run_id, str):
            self.engine.submit(run_id)

    def _submit_run(self, run_id: str) -> None:
        """A run was created on request (API, rerun): announce it, then hand it to the engine."""
        self._announce(run_id, "run.created")
        self.engine.submit(run_id)
        if self._wake_sender is not None and not self._leading.is_set():
            self._wake_sender.run(run_id)  # the leader's engine, not this replica's idle one, runs it

    def _submit_published(self, run_id: str) -> None:
        """A run created (and its events published) on request, on any replica (a pull request's): hand it to the
        engine that runs it."""
        self.engine.submit(run_id)
        if self._wake_sender is not None and not self._leading.is_set():
            self._wake_sender.run(run_id)

    def _submit_created(self, run_ids: Sequence[str], events: Sequence[EventDict]) -> None:
        """The leader's scheduler or tag follower created these runs in one transaction, and read back their events
        in it: publish those, then hand the runs to the engine (no read per run)."""
        for event in events:
            self.bus.publish(event)  # a failing subscriber is logged by the bus
        self._submit_runs(run_ids)

    def _submit_runs(self, run_ids: Sequence[str]) -> None:
        """The sync created these runs (and has already published its committed events): hand them to the engine."""
        for run_id in run_ids:
            self.engine.submit(run_id)

    def _announce(self, run_id: str, kind: str) -> None:
        """Publish events recorded outside the engine on the bus, before the engine acts on them.

        The engine publishes its own changes as it commits them; without this, a WebSocket subscriber would see a
        run's first task start before the run's creation (which would reach it later, from the events table).
        """
        try:
            events = run_events(self.db, run_id, kind)
        except StoreError as e:
            log.warning("could not read back events to announce (%s); subscribers get them a little later", e)
            return
        for event in events:
            self.bus.publish(event)


def _after_sync(
    followers: BranchFollowers | None, tags: TagFollower | None
) -> Callable[[SyncOutcome | None], None] | None:
    """What the own branch's poller does after each sync: follow the branches, then the tags, its patterns match."""
    if followers is None and tags is None:
        return None

    def after(outcome: SyncOutcome | None) -> None:
        if followers is not None:
            followers.discover(outcome)
        if tags is not None:
            tags.check(outcome)

    return after


def pollers_following(repo: FollowedRepo, ref: str | None) -> list[RepoPoller]:
    """The pollers a wake-up for `ref` wakes: the one following that branch (the own branch's, or a further
    branch's); the own branch's for a tag its tag patterns match (it checks the tags after its sync) or for a branch
    its patterns match but not followed yet (that sync finds it); none for a ref nothing here follows. `ref` None
    (an older replica's message) wakes every poller of the repository."""
    further = repo.followers
    if ref is None:
        return [repo.poller, *(further.pollers() if further is not None else [])]
    if ref.startswith("refs/tags/"):
        return [repo.poller] if matches(repo.tag_patterns, ref.removeprefix("refs/tags/")) else []
    if not ref.startswith("refs/heads/"):
        return []
    branch = ref.removeprefix("refs/heads/")
    if branch == repo.branch:
        return [repo.poller]
    if further is None:
        return []
    own = further.poller(branch)
    if own is not None:
        return [own]
    return [repo.poller] if further.wanted(branch) else []


def _start_repo(repo: FollowedRepo) -> None:
    if repo.followers is not None:
        repo.followers.resume()
    repo.poller.start()
    repo.scheduler.start()


def _stop_repo(repo: FollowedRepo) -> None:
    repo.scheduler.stop()
    repo.poller.stop()
    if repo.followers is not None:
        repo.followers.stop()


def _store_opener(settings: Settings) -> Callable[[], ArtifactStore]:
    """The configured artifact store, opened on first use (most controllers never need it)."""
    artifacts = current_settings()
    opened: list[ArtifactStore] = []

    def store() -> ArtifactStore:
        if not opened:
            opened.append(open_store(artifacts, settings.data_dir))
        return opened[0]

    return store


def _retention_sweeper(db: DbEngine, settings: Settings) -> RetentionSweeper:
    """The leader's artifact retention (`ODIN_ARTIFACTS_KEEP_RUNS` / `_KEEP_DAYS` are the default repository's
    policy and that of runs of no repository; each repository row may hold its own), and of events and logs
    (`ODIN_EVENTS_KEEP_DAYS`, `ODIN_LOGS_KEEP_DAYS`)."""
    artifacts = current_settings()
    store = _store_opener(settings)

    return RetentionSweeper(
        db, store, RetentionPolicy(artifacts.keep_runs, artifacts.keep_days),
        interval=artifacts.retention_interval, outputs_dir=settings.data_dir / "outputs",
        history=HistoryPolicy(settings.events_keep_days, settings.logs_keep_days),
        tasks_dir=settings.data_dir / "tasks",
    )  # fmt: skip
