"""Pull / merge requests run their pipelines (issue 13 item 3): a pull request's head commit is fetched, validated
and its changed pipelines run, once per (repository, head commit, pipeline), with trigger `pull_request`.

What a webhook says about a pull request is a claim: the head commit is fetched from the provider's own pull request
ref (`refs/pull/N/head` on GitHub and Gitea, `refs/merge-requests/N/head` on GitLab; for Bitbucket, Cloud and Server
alike, its source branch, from the fork's repository for a fork) into the cache under `refs/odin/pulls/`, and only a
commit that ref reaches runs. The pipelines that run are those the pull request changed since it left its base branch
(the diff from the merge base with the base branch as the remote has it now), filtered by the head commit's
`.odin.yml` with the base branch's name; problems are recorded on the commit as for a push.

Forks never see secrets (`withheld`): a run from a fork records `secrets_withheld`, so the executors give its tasks
nothing the server holds or names (image pull secrets, the artifact store's and MLflow's credentials), and a pipeline
that asks for a secret itself (a task's `secrets:` or `image_pull_secrets:`) is recorded failed before any task
starts, with the reason `SecretsWithheld` and a message saying which task asked for which secret.

With the `latest` run policy, a new head of a pull request cancels the runs of its older heads still going.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odin.controller.admission import GpuCheck, judge
from odin.controller.bus import EventDict
from odin.controller.filters import select_pipelines
from odin.controller.git.errors import GitError
from odin.controller.git.mirror import Mirror
from odin.controller.git.urls import InvalidRemoteUrl, UrlKind, parse_remote_url
from odin.controller.pipelines import PipelineAt, materialize, read_pipeline
from odin.controller.store.commits import SeenCommit, record_commit
from odin.controller.store.db import DbEngine, transaction
from odin.controller.store.pulls import older_heads_active
from odin.controller.store.runs import NewRun, create_run, run_created_events
from odin.controller.store.types import utcnow
from odin.controller.validation import Validator
from odin.controller.vocabulary import Trigger
from odin.schema import Limits, ParamError, resolve_params
from odin.schema.model import PipelineSpec
from odin.schema.problems import Problem

log = logging.getLogger(__name__)

SECRETS_WITHHELD = "SecretsWithheld"
"""The reason of a fork's pull request run that asked for a secret: it failed before any task started."""

PROVIDERS = ("github", "gitlab", "gitea", "bitbucket")


@dataclass(frozen=True, slots=True)
class PullRequest:
    """One pull / merge request as a webhook names it, in the same words for every provider.

    `head_sha` may be abbreviated (Bitbucket Cloud sends 12 hex digits) or None (a comment that does not say);
    `fork` None when the payload does not say (a GitHub or Gitea comment): then it is treated as a fork."""

    provider: str
    number: int
    head_sha: str | None = None
    head_ref: str | None = None
    head_repo: str | None = None  # owner/name of the head repository
    head_url: str | None = None  # its clone URL (a Bitbucket fork is fetched from it)
    base_branch: str | None = None
    fork: bool | None = None
    author: str | None = None

    @property
    def source_ref(self) -> str:
        """Where the provider keeps the head: its pull request ref, or (Bitbucket) the source branch."""
        if self.provider == "gitlab":
            return f"refs/merge-requests/{self.number}/head"
        if self.provider == "bitbucket":
            if not self.head_ref:
                raise PullRequestRejected("the pull request names no source branch")
            return f"refs/heads/{self.head_ref}"
        return f"refs/pull/{self.number}/head"

    @property
    def cache_ref(self) -> str:
        return f"refs/odin/pulls/{self.provider}/{self.number}"

    @property
    def withheld(self) -> bool:
        """Are the repository's secrets withheld from its runs? Unless it is known to come from the repository."""
        return self.fork is not False


class PullRequestRejected(Exception):
    """A pull request's head cannot run as asked; the message says why (answered 422 to the webhook)."""


class PullRequestUnavailable(Exception):
    """The remote cannot be read now (answered 503: the provider retries)."""


@dataclass
class PullOutcome:
    """What one pull request event did: its head commit, the runs created (and those that existed already), the
    runs of older heads it cancelled, and the commit's validation."""

    sha: str
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    validation: str = "valid"
    pipelines: list[str] = field(default_factory=list)
    withheld: bool = True  # its runs get none of the repository's secrets


class PullRequests:
    """Runs one repository's pull requests' heads. Thread-safe: each call works on its own values."""

    def __init__(
        self,
        db: DbEngine,
        repo_id: int,
        mirror: Mirror,
        *,
        trees_dir: Path,
        run_policy: str,
        submit: Callable[[str], None],
        cancel: Callable[[str, str], bool],
        publish: Callable[[EventDict], None] = lambda _event: None,
        validator: Validator | None = None,
        admission: GpuCheck | None = None,
        limits: Limits | None = None,
    ) -> None:
        """`submit(run_id)`: hand a created run to the engine; `cancel(run_id, by)`: cancel an older head's run."""
        self.db = db
        self.repo_id = repo_id
        self.mirror = mirror
        self.trees_dir = trees_dir
        self.run_policy = run_policy
        self.submit = submit
        self.cancel = cancel
        self.publish = publish
        self.validator = validator
        self.admission = admission
        self.limits = limits or Limits()

    def run(
        self,
        pr: PullRequest,
        *,
        by: str,
        retest: bool = False,
        pipeline: str | None = None,
        withheld: bool = True,
        forks: bool = False,
    ) -> PullOutcome:
        """Fetch the head, validate what it changed and start its runs. `retest`: run again (new runs, not deduped);
        `pipeline`: only that one; `withheld`: a fork's (or one not known to be the repository's); `forks`: the
        repository runs forks' pull requests too. Raises `PullRequestRejected`, `PullRequestUnavailable`."""
        sha, base, verified = self._fetch(pr, same_repo=not withheld)
        if not withheld and not verified:
            # The payload says the head is a branch of the repository, but that branch does not have it: a fork's
            # pull request as far as secrets go (the payload's word is not enough to hand them out).
            if not forks:
                raise PullRequestRejected(
                    f"pull request #{pr.number} names branch {pr.head_ref!r} of the repository as its head, but that "
                    f"branch does not have {sha[:12]}: it is treated as a fork's, and this repository runs only "
                    "pull requests from its own branches"
                )
            withheld = True
        change = self.mirror.changed_pipelines(base, sha)
        selection = select_pipelines(self.mirror, sha, change, branch=pr.base_branch or "", limits=self.limits)
        problems = list(selection.problems)
        pipelines = list(selection.pipelines)
        if pipeline is not None:
            pipeline = pipeline.strip("/")
            if pipeline not in self.mirror.list_pipelines(sha):
                raise PullRequestRejected(f"no pipeline {pipeline!r} at {sha[:12]}, the head of pull request "
                                          f"#{pr.number}")  # fmt: skip
            pipelines = [pipeline]
        results = [read_pipeline(self.mirror, sha, p, limits=self.limits, validator=self.validator) for p in pipelines]
        new_runs = self._new_runs(pr, sha, results, problems, by=by, retest=retest, withheld=withheld)
        invalid = any(r.problems for r in results) or problems
        outcome = PullOutcome(sha=sha, validation="invalid" if invalid else "valid", pipelines=pipelines)
        outcome.withheld = withheld
        events: list[EventDict] = []
        info = self.mirror.commit_info(sha)
        with transaction(self.db) as conn:
            seen = SeenCommit(
                repo_id=self.repo_id,
                sha=sha,
                branch=(pr.head_ref or f"pull/{pr.number}")[:255],
                parents=info.parents,
                author_name=info.author_name,
                author_email=info.author_email,
                message=info.message,
                committed_at=info.committed_at,
                validation=outcome.validation,
                problems=[p.to_dict() for r in results for p in r.shown] + [p.to_dict() for p in problems],
                pipelines_changed=pipelines,
                filtered=selection.filtered,
            )
            events.append(record_commit(conn, seen))
            startable: list[str] = []
            for new in new_runs:
                res = create_run(conn, new)
                if not res.created:
                    outcome.existing.append(res.run_id)
                    continue
                outcome.created.append(res.run_id)
                if new.rejected is None:
                    startable.append(res.run_id)
            events.extend(run_created_events(conn, outcome.created))
            older = older_heads_active(conn, self.repo_id, pr.provider, pr.number, sha) if outcome.created else []
        for event in events:
            try:
                self.publish(event)
            except Exception:
                log.exception("repo %s: publishing %s failed", self.repo_id, event.get("kind"))
        for run_id in startable:
            self.submit(run_id)
        if self.run_policy == "latest":
            for run_id in older:
                if self.cancel(run_id, f"pull request #{pr.number}: superseded by its new head {sha[:12]}"):
                    outcome.superseded.append(run_id)
        log.info(
            "repo %s: %s pull request #%s at %s: %d run(s) created, %d existing, %d superseded (%s)",
            self.repo_id, pr.provider, pr.number, sha[:12], len(outcome.created), len(outcome.existing),
            len(outcome.superseded), outcome.validation,
        )  # fmt: skip
        return outcome

    # -- steps ----------------------------------------------------------------------------------------------------
    def _fetch(self, pr: PullRequest, *, same_repo: bool) -> tuple[str, str | None, bool]:
        """The head commit (from the provider's own ref), the merge base with the base branch (None: unknown, so every
        pipeline counts as changed), and, for a pull request said to come from the repository itself, whether its
        head branch there has that commit."""
        base_ref = f"refs/odin/pull-bases/{pr.provider}/{pr.number}"
        own_ref = f"refs/odin/pull-heads/{pr.provider}/{pr.number}"
        url = self._fork_url(pr)
        check_own = same_repo and pr.provider != "bitbucket" and bool(pr.head_ref)  # Bitbucket's head IS the branch
        try:
            if url is None:
                pairs = [(pr.source_ref, pr.cache_ref)]
                if pr.base_branch:
                    pairs.append((f"refs/heads/{pr.base_branch}", base_ref))
                if check_own:
                    pairs.append((f"refs/heads/{pr.head_ref}", own_ref))
                fetched = self.mirror.fetch_refs(pairs)
            else:
                fetched = self.mirror.fetch_refs([(f"refs/heads/{pr.base_branch}", base_ref)])
                fetched |= self.mirror.fetch_refs([(pr.source_ref, pr.cache_ref)], url=url)
        except ValueError as e:
            raise PullRequestRejected(f"pull request #{pr.number} names a ref git refuses: {e}") from None
        except GitError as e:
            if e.transient:
                raise PullRequestUnavailable(f"cannot fetch pull request #{pr.number}: {e.message}") from e
            raise PullRequestRejected(f"cannot fetch pull request #{pr.number}: {e.message}") from e
        tip = fetched.get(pr.cache_ref)
        if tip is None:
            raise PullRequestRejected(
                f"the remote has no {pr.source_ref} (pull request #{pr.number} closed, or its branch deleted?)"
            )
        sha = self._head(pr, tip)
        base_tip = fetched.get(base_ref)
        base = self.mirror.merge_base(base_tip, sha) if base_tip is not None else None
        if not check_own:
            return sha, base, same_repo
        own = fetched.get(own_ref)
        return sha, base, own is not None and (own == sha or self._reaches(own, sha))

    def _head(self, pr: PullRequest, tip: str) -> str:
        """The payload's head commit when the pull request's ref reaches it (a newer push gets its own event), else
        `PullRequestRejected`; the ref's tip when the payload names none."""
        claimed = (pr.head_sha or "").lower()
        if not claimed or tip.startswith(claimed):
            return tip
        if len(claimed) == 40 and self._reaches(tip, claimed):
            return claimed
        raise PullRequestRejected(
            f"commit {claimed} is not on pull request #{pr.number} at the remote (its head is {tip[:12]})"
        )

    def _reaches(self, tip: str, sha: str) -> bool:
        try:
            return self.mirror.is_ancestor(sha, tip)
        except GitError:  # not in the cache at all
            return False

    def _fork_url(self, pr: PullRequest) -> str | None:
        """The fork to fetch a Bitbucket pull request's head from (None: the repository itself). Only a repository on
        the same host as the followed one (a local path only when that is one too): a payload must not make Odin
        fetch from anywhere else."""
        if pr.provider != "bitbucket" or not pr.fork:
            return None
        if not pr.head_url or not pr.base_branch:
            raise PullRequestRejected("a pull request from a fork must name the fork's repository and the base branch")
        try:
            fork, own = parse_remote_url(pr.head_url), parse_remote_url(self.mirror.url)
        except InvalidRemoteUrl as e:
            raise PullRequestRejected(f"the fork's URL cannot be fetched: {e}") from None
        local = (UrlKind.LOCAL, UrlKind.FILE)
        same = (fork.kind in local and own.kind in local) or (fork.host is not None and fork.host == own.host)
        if not same:
            raise PullRequestRejected(
                f"the fork {fork.redacted} is not on the host of the followed repository; it is not fetched"
            )
        return pr.head_url

    def _new_runs(
        self,
        pr: PullRequest,
        sha: str,
        results: Sequence[PipelineAt],
        problems: list[Problem],
        *,
        by: str,
        retest: bool,
        withheld: bool,
    ) -> list[NewRun]:
        new_runs: list[NewRun] = []
        condition: dict[str, Any] = {
            "type": "PullRequest",
            "status": "True",
            "reason": "Retest" if retest else "HeadCommit",
            "message": f"{pr.provider} pull request #{pr.number}"
            + (f" from {pr.head_repo}" if pr.head_repo else "")
            + (f" ({pr.head_ref} into {pr.base_branch})" if pr.head_ref and pr.base_branch else ""),
            "provider": pr.provider,
            "number": pr.number,
            "head_ref": pr.head_ref,
            "base_branch": pr.base_branch,
            "fork": pr.fork,
            "author": pr.author,
            "time": utcnow().isoformat(),
        }
        for r in results:
            if not r.ok or r.spec is None:
                continue
            try:
                params = resolve_params(r.spec, {})
                work_path = materialize(self.mirror, sha, r.pipeline, self.trees_dir)
            except ParamError as e:
                problems.append(Problem(f"{r.pipeline}/main.yml", 1, 1, f"cannot start automatically: {e}"))
                continue
            except GitError as e:
                problems.append(Problem(f"{r.pipeline}/main.yml", 1, 1, f"cannot materialise the files: {e.message}"))
                continue
            wants = secrets_asked(r.spec) if withheld else None
            rejected = wants or judge(self.admission, r.spec)
            new_runs.append(
                NewRun(
                    pipeline=r.pipeline,
                    spec=r.spec,
                    trigger=Trigger.PULL_REQUEST,
                    params=params,
                    commit_sha=sha,
                    repo_id=self.repo_id,
                    triggered_by=by[:255],
                    work_tree=r.tree,
                    work_path=str(work_path),
                    conditions=[condition],
                    rejected=rejected,
                    rejected_reason=SECRETS_WITHHELD if wants else None,
                    pull_request=pr.number,
                    pr_provider=pr.provider,
                    secrets_withheld=withheld,
                    retest=retest,
                )
            )
        return new_runs


def secrets_asked(spec: PipelineSpec) -> str | None:
    """Why a fork's pull request cannot run `spec`: the first task that asks for a secret, or None."""
    for task in spec.tasks:
        if task.secrets:
            return (
                f"secrets are withheld from pull requests from forks: task {task.name!r} mounts the secret "
                f"{task.secrets[0].name!r}; nothing was started (run it from a branch of the repository, or push the "
                "change there)"
            )
        if task.service_account:
            return (
                f"secrets are withheld from pull requests from forks: task {task.name!r} runs as the service account "
                f"{task.service_account!r}; nothing was started"
            )
        if task.image_pull_secrets:
            return (
                f"secrets are withheld from pull requests from forks: task {task.name!r} pulls its image with the "
                f"secret {task.image_pull_secrets[0]!r}; nothing was started"
            )
    return None
