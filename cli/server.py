"""`odin serve`: the controller and the API in one process, stopped gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Generator
from pathlib import Path

import uvicorn

from odin.api.app import build_context, create_app
from odin.api.auth.keys import KeyConfigError
from odin.api.auth.passwords import WeakPassword
from odin.api.auth.users import ensure_admin
from odin.controller.service import Controller
from odin.controller.settings import Settings
from odin.controller.store.db import StoreUnavailable, redact_db_url
from odin.webhooks import notifiers

log = logging.getLogger("odin.server")


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT once its graceful shutdown is done, so the process dies of the signal.

    Odin stops its controller after the server returns, then exits 0: to a supervisor that is a clean stop, and
    the controller's own shutdown is not cut short by the re-raised signal.
    """

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


def run_server(settings: Settings) -> int:
    try:
        controller = Controller(settings)
    except StoreUnavailable as e:
        log.error("%s", e)
        return 1
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
    if status_notifier is not None:
        status_notifier.start(controller.bus)
    try:
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
            # Forwarded headers only from configured proxies: uvicorn's default trusts them from loopback, which
            # let any local client (or a sidecar) pick its own address and slip past the login rate limits.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
        )
        _Server(config).run()
    finally:
        log.info("shutting down: stopping the controller (running tasks are left to finish)")
        controller.stop()
        if status_notifier is not None:
            status_notifier.stop()
    return 0
