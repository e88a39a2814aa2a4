"""`odin serve`: the controller and the API in one process, stopped gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import uvicorn
from odin.api.app import build_context, create_app
from odin.api.auth.users import ensure_admin
from odin.controller.service import Controller
from odin.controller.settings import Settings
from odin.controller.store.db import StoreUnavailable, redact_db_url

log = logging.getLogger("odin.server")


def run_server(settings: Settings) -> int:
    try:
        controller = Controller(settings)
    except StoreUnavailable as e:
        log.error("%s", e)
        return 1
    admin_password = settings.admin_password.get_secret_value() if settings.admin_password else None
    if ensure_admin(controller.db, admin_password):
        log.info("created user 'admin' from ODIN_ADMIN_PASSWORD")
    app = create_app(build_context(settings, controller))
    log.info(
        "odin serving on http://%s:%d (database %s, executor %s, repo %s)",
        settings.host,
        settings.port,
        redact_db_url(settings.effective_database_url()),
        settings.executor,
        next(iter(controller.repos.values())).url if controller.repos else "none",
    )
    controller.start()
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        log.info("shutting down: stopping the controller (running tasks are left to finish)")
        controller.stop()
    return 0
