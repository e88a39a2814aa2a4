"""Typed settings, read once from flags or `ODIN_*` environment variables.

One place, each field with its unit and default explained, so an operator can read this file instead of grepping for
`os.environ`. Secrets (`admin_password`, `jwt_secret`, git tokens) are `SecretStr`: they never print in a repr, a log
line or an error message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

GITHUB_PAYLOAD_CAP = 25 * 1024 * 1024
"""GitHub does not deliver payloads over 25 MB; no provider sends more, so neither does Odin accept more."""


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/odin` (usually ~/.local/share/odin): the embedded default keeps everything there."""
    import os

    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "odin"


class Settings(BaseSettings):
    """Everything `odin serve` needs. Field names map to `ODIN_<NAME>` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ODIN_", extra="ignore", validate_default=True, populate_by_name=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="Root of all local state (db, caches, runs).")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite at <data_dir>/odin.db. Postgres: postgresql+psycopg2://...",
    )

    # -- the followed repository ------------------------------------------------------------------------------
    repo: str | None = Field(default=None, description="Repository to follow: path, file://, https:// or ssh:// URL.")
    branch: str = Field(default="main", description="Branch followed in `repo`.")
    repo_name: str = Field(default="default", description="Short name of the repository inside Odin.")
    git_token: SecretStr | None = Field(
        default=None, description="https token for `repo` (or a reference: env:/file:)."
    )
    git_ssh_key: str | None = Field(default=None, description="Path of the ssh private key for `repo`.")
    git_allow_http: bool = Field(
        default=False,
        description="Follow plain http:// repository URLs too (a Git server inside the cluster or on loopback): their "
        "tokens travel unencrypted, so only where the network is trusted.",
    )
    poll_interval: float = Field(default=30.0, gt=0, description="Seconds between fetches; jittered by +-10%.")
    run_policy: Literal["latest", "each"] = Field(
        default="latest",
        description="A push of several commits runs only the new tip (latest) or every commit (each).",
    )
    run_on_first_sync: bool = Field(
        default=False,
        description="When Odin first sees a repository, run the pipelines at its tip (default: record it as baseline).",
    )
    pull_requests: Literal["off", "same-repo", "all"] = Field(
        default="off",
        description="Pull / merge requests against `branch` run their pipelines: off, same-repo (head in `repo` "
        "itself) or all (forks too, never with secrets). docs/webhooks.md#pull-requests",
    )
    pr_approvers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Provider logins, comma-separated, whose `/retest` comments on a pull request of `repo` are "
        "obeyed (besides GitHub's owners, members and collaborators).",
    )
    repo_aliases: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Other URLs of `repo`, comma-separated: webhooks naming any of them are for `repo` (e.g. when "
        "Odin follows a mirror or a local path of a GitHub repository).",
    )

    # -- webhooks (docs/webhooks.md) ------------------------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Secret shared with the provider's webhook for `repo`, or a reference to it (env:NAME, "
        "file:/path; a file is re-read, so rotating it needs no restart). Without any, every delivery is refused.",
    )
    webhook_secret_previous: SecretStr | None = Field(
        default=None,
        description="The secret being rotated out (value or reference): accepted alongside `webhook_secret`.",
    )
    webhook_max_body: int = Field(
        default=GITHUB_PAYLOAD_CAP, gt=0, description="Largest webhook body accepted, bytes (413 above it)."
    )
    webhook_spool_threshold: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Webhook bodies up to this size are kept in memory while verified; larger ones are spooled to "
        "<data_dir>/spool, bytes.",
    )
    webhook_large_bodies: int = Field(
        default=4,
        ge=1,
        description="Webhook bodies over webhook_spool_threshold received at once; more get 503 with Retry-After.",
    )

    # -- commit statuses (docs/webhooks.md#commit-status) -----------------------------------------------------------
    status_provider: Literal["github", "gitlab", "gitea", "bitbucket", "bitbucket-server"] | None = Field(
        default=None,
        description="Post run and validation outcomes as commit statuses to this provider (off if unset): bitbucket "
        "is Bitbucket Cloud, bitbucket-server Bitbucket Server / Data Center.",
    )
    status_api_url: str | None = Field(
        default=None,
        description="The provider's API root. Default: https://api.github.com, https://gitlab.com/api/v4, "
        "https://api.bitbucket.org/2.0; required for Gitea/Forgejo (https://gitea.example.com/api/v1), "
        "Bitbucket Server / Data Center (the server's root, https://bitbucket.example.com) and self-hosted "
        "GitHub/GitLab.",
    )
    status_github_app_id: int | None = Field(
        default=None,
        ge=1,
        description="GitHub App id: with status_github_app_key, Odin mints the App's installation tokens for check "
        "runs itself (instead of ODIN_STATUS_TOKEN).",
    )
    status_github_app_key: SecretStr | None = Field(
        default=None, description="The GitHub App's private key (PEM), or a reference (env:NAME, file:/path)."
    )
    status_checks: bool = Field(
        default=True,
        description="Besides statuses, show problems at file:line and run summaries where the provider can: GitHub "
        "check runs (needs a GitHub App installation token; falls back to statuses when refused), GitLab merge-request "
        "notes, Bitbucket Code Insights reports (docs/webhooks.md#checks-and-annotations). false: statuses only.",
    )
    status_token: SecretStr | None = Field(
        default=None, description="API token allowed to set commit statuses, or a reference (env:NAME, file:/path)."
    )
    status_repo: str | None = Field(
        default=None,
        description="owner/name (GitLab: the project's path or numeric id) to post to. Default: from `repo`'s URL.",
    )
    status_context: str = Field(
        default="odin", min_length=1, max_length=100, description="Prefix of the status names (`odin/<pipeline>`)."
    )

    # -- run notifications (docs/notifications.md) -----------------------------------------------------------------
    notify_timeout: float = Field(
        default=10.0, gt=0, description="Seconds one notification (Slack, webhook, SMTP) may take before it is retried."
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for `notify: email` (e-mail is off if unset).")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP server port.")
    smtp_user: str | None = Field(default=None, description="SMTP login (none if unset).")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_from: str | None = Field(default=None, description="Sender address of notification e-mails.")
    smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP connection with STARTTLS.")

    # -- execution --------------------------------------------------------------------------------------------
    executor: Literal["local", "kubernetes"] = Field(default="local", description="Where tasks run.")
    parallelism: int = Field(default=8, ge=1, description="Tasks running at once per run (local executor default).")
    max_active_tasks: int = Field(default=64, ge=1, description="Tasks running at once across all runs.")
    max_active_runs: int | None = Field(
        default=None,
        ge=1,
        description="Runs active at once across all pipelines and repositories; more wait Queued and start by their "
        "pipeline's `priority`, then oldest first. Unset (or `none`): unlimited.",
    )
    retry_backoff: float = Field(default=10.0, ge=0, description="Seconds before the first retry; doubles each time.")
    retry_backoff_max: float = Field(default=600.0, ge=0, description="Upper bound of a retry delay, seconds.")
    kill_grace: float = Field(default=10.0, ge=0, description="Seconds between SIGTERM and SIGKILL on cancel/timeout.")
    leader_lease: float = Field(
        default=10.0,
        ge=1.0,
        le=300.0,
        description="Seconds a leader's lease lasts on Postgres without renewal (renewed every third of it). A "
        "follower takes over a leader that died at its next try (every 2 s at most); one that stopped renewing "
        "(paused, cut off) after this long. A leader that comes back later has its writes refused (fencing).",
    )
    shutdown_grace: float = Field(
        default=10.0,
        ge=0,
        description="Seconds `odin serve` takes to stop after SIGTERM/SIGINT. It starts nothing from the signal on; "
        "open requests finish and running tasks may end (their outcome recorded) within this time. Tasks still "
        "running then are left running and adopted by the next start.",
    )
    gc_freeze_interval: float = Field(
        default=10.0,
        ge=0,
        description="Seconds between the controller's gc.freeze() ticks: the objects that survived since the last "
        "tick are collected, then frozen, so Python's full collections stop walking the cached pods and run states "
        "(whose pauses delayed watch events by up to seconds at 10,000 live pods). 0: off, CPython's defaults. "
        "docs/kubernetes.md#garbage-collector-pauses",
    )
    events_keep_days: float | None = Field(
        default=None,
        gt=0,
        description="Retention of events: the leader deletes events older than N days (in batches, in the background, "
        "with the retention sweep), except those of runs still active. Runs, task runs, commits and what a run ran "
        "(its commit, spec, parameters, outcome) are kept; a run's page says when its events were removed. Unset: "
        "keep every event.",
    )
    logs_keep_days: float | None = Field(
        default=None,
        gt=0,
        description="Retention of task logs on this data directory: the leader deletes the logs of runs that ended "
        "more than N days ago (the run and its tasks are kept; its page says the logs were removed). Unset: keep "
        "every log.",
    )
    root_path: Path | None = Field(default=None, description="${ROOT_PATH} for local tasks. Default <data_dir>/root.")
    local_task_user: str | None = Field(
        default=None,
        description="Run local tasks as this user (name or uid) instead of Odin's own, so they cannot read Odin's "
        "data directory (database, JWT secret). Needs Odin to run as root; see docs/local-executor.md.",
    )
    local_sandbox: Literal["auto", "landlock", "off"] = Field(
        default="auto",
        description="Close Odin's data directory (database, JWT secret, git mirror, other runs) to local tasks with "
        "Linux Landlock, leaving each task only its own paths: `auto` when the kernel has it (else a warning at "
        "start), `landlock` to refuse to start without it, `off`. See docs/local-executor.md.",
    )
    local_work_max_files: int = Field(
        default=10_000,
        ge=1,
        description="Most files (symbolic links included) in a pipeline directory the local executor copies into a "
        "run's ${WORK_PATH}; a larger directory is a problem on the commit and does not run.",
    )
    local_work_max_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=0,
        description="Most bytes of file content in a pipeline directory the local executor copies into ${WORK_PATH}.",
    )
    validation_workers: int = Field(
        default=2,
        ge=0,
        description="Worker processes validating main.yml files larger than 4 KiB and rendering main.yml.jinja2 "
        "templates, so a large or hostile file never stalls the API or the engine; 0 validates in the calling thread.",
    )
    validation_queue: int | None = Field(
        default=None,
        ge=0,
        description="POST /v1/validate requests that may wait for a validation worker at once (beyond the ones "
        "validating); more get 503 with Retry-After, so a flood of validations never holds the threads other routes "
        "need. Default: 4 per worker.",
    )
    validation_timeout: float = Field(
        default=10.0,
        gt=0,
        description="CPU seconds one main.yml may take to validate in a worker; past it, the file's one problem is "
        "'validation took longer than N s' (a worker silent for 10x this long is killed and replaced).",
    )

    # -- Kubernetes executor (ODIN_EXECUTOR=kubernetes; docs/kubernetes.md) ---------------------------------------
    kube_in_cluster: bool | None = Field(
        default=None,
        description="Use the pod's ServiceAccount (true) or a kubeconfig (false). Default: in-cluster when Odin runs "
        "in a pod and no kube_config is given.",
    )
    kube_config: Path | None = Field(default=None, description="Kubeconfig file. Default: $KUBECONFIG, ~/.kube/config.")
    kube_context: str | None = Field(default=None, description="Kubeconfig context. Default: the current context.")
    kube_namespace: str | None = Field(
        default=None,
        description="Namespace of task objects when nothing more specific applies. Default: the controller's own "
        "namespace in-cluster, the kubeconfig context's namespace, else `default`.",
    )
    kube_pipeline_namespaces: dict[str, str] = Field(
        default_factory=dict,
        description='Per-pipeline namespaces, as JSON: {"<pipeline path glob>": "<namespace>"}, first match wins '
        '(e.g. {"nlp/*": "team-nlp"}). Checked before the repository\'s namespace and kube_namespace.',
    )
    kube_instance: str = Field(
        default="default",
        description="Label value `odin.dev/instance` of every object: lets two Odins share a namespace without "
        "touching each other's objects.",
    )
    kube_service_account: str | None = Field(
        default=None, description="ServiceAccount of task pods that name none. Default: the namespace's `default`."
    )
    kube_image_pull_secrets: list[str] = Field(
        default_factory=list, description="Secrets added to every task pod's imagePullSecrets (JSON list)."
    )
    kube_gpu_tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        description="Tolerations added to pods of tasks with num_gpus > 0 (JSON list; [] for none).",
    )
    kube_scheduler_name: str | None = Field(
        default=None, description="schedulerName of task pods. Default: the cluster's default scheduler."
    )
    kube_cleanup_ttl: float | None = Field(
        default=3600.0,
        ge=0,
        description="Seconds an ended attempt's objects stay in the cluster (after its logs are saved); `never` "
        "keeps them.",
    )
    kube_data_claim: str | None = Field(
        default=None,
        description="PersistentVolumeClaim mounted at /odin/data in every task pod: ${ROOT_PATH}=/odin/data, "
        "${RUN_PATH}=/odin/data/runs/<run>. Without it, ${RUN_PATH} is an emptyDir per pod (not shared by tasks).",
    )
    kube_image_pull_grace: float = Field(
        default=120.0,
        ge=0,
        description="Seconds a pod may stay in ImagePullBackOff/ErrImagePull before the task fails.",
    )
    kube_missing_volume_deadline: float = Field(
        default=120.0,
        ge=0,
        description="Seconds a pod may wait for a missing Secret, ConfigMap or PVC before the task fails.",
    )
    kube_unschedulable_deadline: float = Field(
        default=1800.0,
        ge=0,
        description="Seconds a pod may stay Unschedulable before the task fails (0: wait forever). Time waiting "
        "in a Kueue queue does not count.",
    )
    kube_operator_deadline: float = Field(
        default=300.0,
        ge=0,
        description="Seconds a training-operator object may go without any status before the task fails (operator "
        "not installed). 0: wait forever.",
    )
    kube_api_retry_deadline: float = Field(
        default=120.0,
        gt=0,
        description="Seconds one API request is retried on 429 (honouring Retry-After), 5xx and dropped "
        "connections before the task fails (an infrastructure failure, retried by the engine).",
    )
    kube_workers: int = Field(default=8, ge=1, le=256, description="Threads submitting and deleting objects.")
    kube_qps: float = Field(
        default=50.0,
        ge=0,
        description="Requests per second the Kubernetes executor may send, sustained (a token bucket in front of every "
        "request, retries and watch renewals included; client-go's rest.Config.QPS). 0: no client-side limit.",
    )
    kube_burst: int = Field(
        default=100,
        ge=1,
        description="Requests the Kubernetes executor may send at once above kube_qps (the bucket's size; client-go's "
        "rest.Config.Burst).",
    )
    kube_sweep_interval: float = Field(
        default=300.0,
        gt=0,
        description="Seconds between clean-up sweeps for objects a restart left behind (ended, orphaned, old "
        "${WORK_PATH} ConfigMaps).",
    )
    kube_watch_timeout: int = Field(
        default=300, ge=10, description="Seconds a watch request lasts before it is renewed (server-side timeout)."
    )
    kube_work_max_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=0,
        description="Largest pipeline directory carried into pods as ${WORK_PATH} (through ConfigMaps), bytes.",
    )
    kube_elastic_rdzv_endpoint: str = Field(
        default="etcd-service:2379", description="etcd rendezvous endpoint of ElasticJob tasks (host:port)."
    )
    kube_trainjob_runtime: str = Field(
        default="torch-distributed", description="ClusterTrainingRuntime that TrainJob tasks reference."
    )
    kube_odin_image: str = Field(
        default="ghcr.io/odin-ml/odin:latest",
        description="Odin's own image: the init and upload containers that move artifacts with an S3 artifact store "
        "(ODIN_ARTIFACTS_BACKEND=s3) run it.",
    )
    kube_artifacts_secret: str | None = Field(
        default=None,
        description="Secret (in each task namespace) with keys access_key_id and secret_access_key that the "
        "artifact containers read by reference. Unset: the pods use boto3's own chain (IRSA, workload identity).",
    )
    kube_gpu_admission: bool = Field(
        default=True,
        description="Refuse a run when created if one of its tasks asks for more GPUs, or a GPU model (node_selector), "
        "than any Node has (needs get/list nodes). Turn off where GPU node pools scale up from zero: their nodes do "
        "not exist until a pod asks.",
    )

    # -- Midgard: GPU aggregation (docs/midgard-aggregation.md) ---------------------------------------------------
    midgard_agents: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="URLs of Midgard agents, comma-separated (http://gpu-1:9400,...). With neither this nor "
        "`midgard_service`, the API reports this machine itself, in-process (the embedded default).",
    )
    midgard_service: str | None = Field(
        default=None,
        description="Kubernetes Service of the Midgard DaemonSet: agents are found through its EndpointSlices "
        "(`kubernetes.io/service-name=<this>`), re-listed every `midgard_discovery_interval`. Uses the Kubernetes "
        "connection settings above (kube_in_cluster, kube_config, kube_context).",
    )
    midgard_namespace: str | None = Field(
        default=None, description="Namespace of `midgard_service`. Default: kube_namespace, else the implied one."
    )
    midgard_port_name: str = Field(
        default="http", description="Name of the EndpointSlice port agents listen on (else the slice's only port)."
    )
    midgard_scheme: Literal["http", "https"] = Field(
        default="http", description="Scheme of agent URLs found through the Service."
    )
    midgard_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the agents require, as a value or (better) a reference: env:NAME, file:/path "
        "(re-read, so rotating it needs no restart). Never logged.",
    )
    midgard_timeout: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds one agent has to answer. A node past it is listed unreachable with its last good "
        "reading, and is not waited for again until it answers (it is refreshed in the background).",
    )
    midgard_cache_ttl: float = Field(
        default=2.0,
        ge=0,
        description="Seconds a node's reading is reused: a burst of /v1/gpus queries costs one fan-out.",
    )
    midgard_discovery_interval: float = Field(
        default=30.0, gt=0, description="Seconds between listings of the Service's EndpointSlices."
    )

    # -- what a task used of its GPUs (docs/midgard.md) ----------------------------------------------------------
    gpu_sample_interval: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds between samples of running tasks' GPUs (utilisation, memory): the resolution of each "
        "task's GPU usage summary and of the idle flag. One NVML pass per sample for all tasks.",
    )
    gpu_idle_utilization: float = Field(
        default=5.0,
        ge=0,
        le=100,
        description="A task whose GPUs all stay at or under this utilisation (percent) for gpu_idle_after seconds "
        "is flagged idle (event task.gpu_idle, shown by the API and odinctl). It is never killed.",
    )
    gpu_idle_after: float = Field(
        default=600.0,
        ge=0,
        description="Seconds at or under gpu_idle_utilization before a task is flagged as holding idle GPUs.",
    )

    # -- API ----------------------------------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the API binds to.")
    port: int = Field(default=9003, ge=0, le=65535, description="Port of the API.")
    admin_password: SecretStr | None = Field(
        default=None, description="On first start, create user `admin` with this password. No default, ever."
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 secret (>= 32 bytes). Default: generated once into <data_dir>/jwt-secret."
    )
    jwt_secret_file: Path | None = Field(default=None, description="Read the HS256 secret from this file.")
    admin_password_file: Path | None = Field(
        default=None, description="Like admin_password, read from a file (a mounted Kubernetes secret)."
    )
    jwt_algorithm: Literal["HS256", "RS256", "EdDSA", "ES256"] = Field(
        default="HS256", description="Access token signature. RS256/EdDSA/ES256 need the two key files below."
    )
    jwt_private_key_file: Path | None = Field(default=None, description="PEM private key (RS256/EdDSA/ES256).")
    jwt_public_key_file: Path | None = Field(default=None, description="PEM public key (RS256/EdDSA/ES256).")
    token_ttl: int = Field(
        default=3600,
        gt=0,
        description="Access token lifetime, seconds; also the longest lifetime accepted (a token signed for longer "
        "is refused).",
    )
    auth_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        description="How long a user's standing (role, disabled, logged out) and a verified API token read from the "
        "database are reused for their requests. Changes made through this server (a revocation included) apply at "
        "once; changes made by another replica or `odin users` within this time. An API token's expiry is checked on "
        "every request. 0: read the database on every request.",
    )
    login_attempts_per_minute: int = Field(
        default=10, ge=1, description="Login attempts allowed per user name and client address, per minute."
    )
    login_attempts_per_minute_per_ip: int = Field(
        default=60, ge=1, description="Login attempts allowed per client address (any user name), per minute."
    )
    login_failures_per_account: int = Field(
        default=10,
        ge=1,
        description="Failed logins allowed per user name from all addresses together, per "
        "`login_failure_window`; then 429 for that user name until the window refills (successes do not count).",
    )
    login_failure_window: float = Field(
        default=300.0, gt=0, description="Seconds over which `login_failures_per_account` refills."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses (or networks) of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are "
        "believed, comma-separated; '*' trusts any. Default: none, the client address is the peer's.",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted, bytes; larger ones get 413."
    )
    http_header_timeout: float | None = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a whole request head (408 and closed after; slowloris). "
        "`none` disables it.",
    )
    http_body_timeout: float | None = Field(
        default=30.0,
        gt=0,
        description="Seconds without a byte while a request body is being read before the connection is closed. "
        "`none` disables it.",
    )
    http_keep_alive_timeout: int = Field(
        default=5, ge=1, description="Seconds an idle kept-alive connection stays open between requests."
    )
    serve_processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes of `odin serve` answering on its one port (a supervisor forks them; each is a "
        "replica, one leads). More than 1 needs PostgreSQL. Up to one per core: one process answers on one core.",
    )
    http_max_connections: int | None = Field(
        default=1000,
        ge=1,
        description="Open connections (WebSockets included) served at once; more are answered 503 and closed at "
        "once. `none`: no cap.",
    )
    ws_queue_size: int = Field(
        default=1000, ge=10, description="Events buffered per WebSocket client before it is dropped as too slow."
    )
    ws_poll_interval: float = Field(
        default=0.25,
        gt=0,
        description="Seconds between reads of the events table for WebSocket clients (changes made by other "
        "processes; the engine's own changes are pushed at once).",
    )
    ws_auth_timeout: float = Field(
        default=5.0, gt=0, description="Seconds a WebSocket client has to authenticate before it is disconnected."
    )
    git_committer_name: str = Field(default="Odin", description="Committer of commits made through the API.")
    git_committer_email: str = Field(default="odin@localhost", description="Committer e-mail of API commits.")
    git_author_domain: str = Field(
        default="users.odin.invalid",
        description="API commits are authored by the user; users without an e-mail get <name>@<this domain>.",
    )
    public_url: str | None = Field(
        default=None,
        # ODIN_EXTERNAL_URL: the name reverse-proxy users look for (the console's path prefix comes from its path).
        validation_alias=AliasChoices("ODIN_PUBLIC_URL", "ODIN_EXTERNAL_URL"),
        description="URL users reach the API at (links in notifications and commit statuses; its path is the "
        "console's prefix behind a reverse proxy). Also read from ODIN_EXTERNAL_URL.",
    )
    run_url_template: str = Field(
        default="{public_url}/console/runs/{run_id}",
        description="Link to a run in commit statuses (the run's console page); {public_url}, {run_id}, {pipeline} "
        "and {commit} are replaced.",
    )

    @field_validator("repo_aliases", "pr_approvers", "trusted_proxies", "midgard_agents", mode="before")
    @classmethod
    def _comma_separated(cls, v: object) -> object:
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator(
        "kube_cleanup_ttl",
        "http_header_timeout",
        "http_body_timeout",
        "http_max_connections",
        "max_active_runs",
        mode="before",
    )
    @classmethod
    def _never(cls, v: object) -> object:
        return None if isinstance(v, str) and v.strip().lower() in ("", "never", "none") else v

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    def midgard_mode(self) -> Literal["embedded", "static", "kubernetes"]:
        """Where GPU readings come from: this process (no agent configured), a static list, or the Service."""
        if self.midgard_service:
            return "kubernetes"
        return "static" if self.midgard_agents else "embedded"

    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'odin.db'}"

    def effective_root_path(self) -> Path:
        return self.root_path or self.data_dir / "root"

    @property
    def runs_dir(self) -> Path:
        """${RUN_PATH} parents and task logs: <data_dir>/runs/<run-id>/."""
        return self.data_dir / "runs"

    @property
    def trees_dir(self) -> Path:
        """Content-addressed pipeline directories, keyed by git tree oid: ${WORK_PATH}."""
        return self.data_dir / "trees"

    @property
    def git_cache_dir(self) -> Path:
        return self.data_dir / "git"
