"""`odin serve`: the controller and the API in one process, stopped gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType

import uvicorn

from odin.api.app import build_context, create_app
from odin.api.auth.keys import KeyConfigError
from odin.api.auth.passwords import WeakPassword
from odin.api.auth.users import ensure_admin
from odin.cli.cluster_gpus import cluster_gpu_sampler
from odin.cli.http_guard import GuardLimits, guarded_protocol
from odin.cli.local_gpus import local_gpu_probe, local_gpu_sampler
from odin.cli.serve_processes import Supervisor, WorkerStartFailed, bind_listening_sockets
from odin.controller.artifacts.settings import current_settings
from odin.controller.executors.sandbox import SandboxUnavailable
from odin.controller.executors.task_user import TaskUserError
from odin.controller.gc_freeze import start_gc_freezer
from odin.controller.gpus import GpuSampleSource
from odin.controller.secrecy import mark_undumpable, withhold_secrets
from odin.controller.service import Controller
from odin.controller.settings import Settings
from odin.controller.store.db import StoreUnavailable, redact_db_url
from odin.webhooks import notifiers, notify

log = logging.getLogger("odin.server")


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT once its graceful shutdown is done, so the process dies of the signal.

    Odin stops its controller after the server returns, then exits 0: to a supervisor that is a clean stop, and
    the controller's own shutdown is not cut short by the re-raised signal. The signal itself first stops the
    controller taking work (`on_signal`), so nothing starts during uvicorn's graceful shutdown.
    """

    def __init__(self, config: uvicorn.Config, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal
        self.signalled_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.signalled_at is None:
            self.signalled_at = time.monotonic()
        self._on_signal()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                if captured:
                    log.info("received signal %s: shutting down gracefully", captured[-1])
                captured.clear()


def first_admin_password(settings: Settings) -> str | None:
    """ODIN_ADMIN_PASSWORD, or the content of ODIN_ADMIN_PASSWORD_FILE (a mounted secret); never a default."""
    if settings.admin_password is not None:
        return settings.admin_password.get_secret_value()
    if settings.admin_password_file is not None:
        return Path(settings.admin_password_file).read_text().strip() or None
    return None


def protect_secrets(settings: Settings) -> None:
    """Before anything else starts: close this process to its tasks and take the secrets out of the environment
    (they are in `settings` now). See `odin.controller.secrecy` and docs/local-executor.md."""
    if mark_undumpable():
        log.info("process marked non-dumpable: its /proc files and ptrace are closed to other processes of its user")
    references = [
        secret.get_secret_value()
        for secret in (
            settings.webhook_secret,
            settings.webhook_secret_previous,
            settings.git_token,
            settings.midgard_token,
        )
        if secret is not None
    ]
    for status_secret in (settings.status_token, settings.status_github_app_key):
        if status_secret is not None:
            references.append(status_secret.get_secret_value())
    references += current_settings().references()  # the variables `env:` credential references name
    names = withhold_secrets(references)
    if names:
        log.info("secret-bearing variables read and removed from the environment: %s", ", ".join(names))


def log_task_isolation(settings: Settings, controller: Controller) -> None:
    """Say at start what keeps local tasks out of the data directory, and warn when nothing does."""
    data_dir = settings.data_dir
    user = f"as {settings.local_task_user}" if settings.local_task_user else "as Odin's own user"
    if controller.sandbox is not None:
        sandbox = controller.sandbox
        outside = [path for path, _ in sandbox.secret_targets() if not path.is_relative_to(sandbox.data_dir)]
        log.info(
            "local tasks run %s in a %s sandbox: the data directory %s is closed to them except their own paths, "
            "and so are the secret files Odin reads outside it (%d now: %s; file: references added later are "
            "closed to the tasks started after) (ODIN_LOCAL_SANDBOX=%s)",
            user, sandbox.describe(), data_dir, len(outside), ", ".join(map(str, outside)) or "none",
            settings.local_sandbox,
        )  # fmt: skip
        return
    if settings.local_task_user:
        missing = f": {controller.sandbox_missing}" if controller.sandbox_missing else ""
        log.info(
            "local tasks run %s, without a sandbox (ODIN_LOCAL_SANDBOX=%s%s): they can read other runs' files",
            user, settings.local_sandbox, missing,
        )  # fmt: skip
        return
    why = controller.sandbox_missing or "ODIN_LOCAL_SANDBOX=off"
    log.warning(
        "local tasks run as Odin's own user with no sandbox (%s): they can read its data directory %s, the database "
        "and jwt-secret included, and every secret file it reads (ODIN_JWT_SECRET_FILE, ODIN_ADMIN_PASSWORD_FILE, "
        "file: references, its libraries' ~/.aws/credentials, ~/.kube/config, ~/.netrc...); use a kernel with "
        "Landlock, or run Odin as root with ODIN_LOCAL_TASK_USER=<user>",
        why, data_dir,
    )  # fmt: skip


def gpu_sample_source(settings: Settings) -> GpuSampleSource:
    """Where the GPU usage sampler reads running tasks' GPUs: this machine's NVML on the embedded default, the
    Midgard agents (a static list, or the Service's on Kubernetes) when they are configured."""
    if settings.midgard_mode() == "embedded":
        return local_gpu_sampler()
    return cluster_gpu_sampler(settings)


def run_server(settings: Settings) -> int:
    """`odin serve`: one process, or (ODIN_SERVE_PROCESSES > 1) a supervisor forking that many replicas that share
    one listening socket (`cli/serve_processes.py`)."""
    protect_secrets(settings)
    if settings.serve_processes == 1:
        return _serve(settings, None)
    if not settings.effective_database_url().startswith("postgresql"):
        log.error(
            "cannot start: ODIN_SERVE_PROCESSES=%d needs PostgreSQL (ODIN_DATABASE_URL): the processes are replicas "
            "that share their state through it, and SQLite serves one process",
            settings.serve_processes,
        )
        return 2
    try:
        sockets = bind_listening_sockets(settings.host, settings.port, settings.serve_processes)
    except OSError as e:
        log.error("cannot start: cannot listen on %s:%d: %s", settings.host, settings.port, e)
        return 1

    def serve_one(index: int) -> int:
        for other in sockets[:index] + sockets[index + 1 :]:
            other.close()
        return _serve(settings, sockets[index])

    try:
        return Supervisor(settings.serve_processes, serve_one).run()
    except WorkerStartFailed as e:
        log.error("cannot start: %s", e)
        return 2
    finally:
        for sock in sockets:
            sock.close()


def _serve(settings: Settings, sock: socket.socket | None) -> int:
    """One replica: the controller and the API, on `sock` when a supervisor bound it, else on host:port."""
    try:
        controller = Controller(settings, gpus=local_gpu_probe(), gpu_samples=gpu_sample_source(settings))
    except StoreUnavailable as e:
        log.error("%s", e)
        return 1
    except (TaskUserError, SandboxUnavailable) as e:
        log.error("cannot start: %s", e)
        return 2
    if settings.executor == "local":
        log_task_isolation(settings, controller)
    try:
        context = build_context(settings, controller)
        admin_password = first_admin_password(settings)
    except (KeyConfigError, OSError) as e:
        log.error("cannot start: %s", e)
        controller.stop()
        return 1
    try:
        if ensure_admin(controller.db, admin_password):
            log.info("created user 'admin' from the configured first-admin password")
    except WeakPassword as e:
        log.error("cannot create the first admin: %s", e)
        controller.stop()
        return 1
    try:
        status_notifier = notifiers.from_settings(settings, controller)
    except notifiers.NotifierConfigError as e:
        log.error("commit statuses: %s", e)
        controller.stop()
        return 2
    app = create_app(context)
    log.info(
        "odin serving on http://%s:%d (database %s, executor %s, repo %s)",
        settings.host,
        settings.port,
        redact_db_url(settings.effective_database_url()),
        settings.executor,
        next(iter(controller.repos.values())).url if controller.repos else "none",
    )
    controller.start()
    freezer = start_gc_freezer(settings.gc_freeze_interval)
    if status_notifier is not None:
        status_notifier.start(controller.bus)
    run_notifier = notify.from_settings(settings, controller).start(controller.bus)
    server: _Server | None = None
    try:
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(1, round(settings.shutdown_grace)),
            timeout_keep_alive=settings.http_keep_alive_timeout,
            http=guarded_protocol(
                GuardLimits(settings.http_header_timeout, settings.http_body_timeout, settings.http_max_connections)
            ),
            # Forwarded headers only from configured proxies: uvicorn's default trusts them from loopback, which
            # let any local client (or a sidecar) pick its own address and slip past the login rate limits.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
        )
        server = _Server(config, on_signal=controller.drain)
        server.run(sockets=None if sock is None else [sock])
    finally:
        controller.drain()
        started = server.signalled_at if server is not None and server.signalled_at is not None else time.monotonic()
        remaining = max(0.0, started + settings.shutdown_grace - time.monotonic())
        if not controller.wait_idle(remaining):
            log.info("shutting down: tasks still running after %.0f s are left to finish", settings.shutdown_grace)
        log.info("shutting down: stopping the controller (nothing new was started since the signal)")
        controller.stop()
        if freezer is not None:
            freezer.stop()
        if status_notifier is not None:
            status_notifier.stop()
        run_notifier.stop()
    return 0
