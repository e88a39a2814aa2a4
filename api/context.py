"""What every route handler may need, built once per app: the store, the controller, keys, limiters, settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from odin.api.auth.api_tokens import ApiTokenVerifier
from odin.api.auth.ratelimit import RateLimiter
from odin.api.auth.tokens import TokenKeys
from odin.api.validation_queue import ValidationQueue
from odin.controller.facade import (
    ArtifactReader,
    Controller,
    FollowedRepo,
    TrackingSettings,
    Validator,
    artifact_reader,
)
from odin.controller.settings import Settings
from odin.controller.store.db import DbEngine


class NoScheduler(Exception):
    """This server serves a store without a controller (read-only tools): it cannot start or edit anything.

    Raised here, where the controller is asked for; `odin.api.errors` maps it to 503 (it imports this module, not the
    other way round, so that services may use the context without a cycle through the error mapping)."""


@dataclass
class AppContext:
    settings: Settings
    db: DbEngine
    keys: TokenKeys
    controller: Controller | None = None  # None when the API serves a store without scheduling (tests, tools)
    login_limiter: RateLimiter | None = None  # per (user name, client address)
    login_ip_limiter: RateLimiter | None = None  # per client address
    login_account_limiter: RateLimiter | None = None  # failures per user name, whatever the address
    api_tokens: ApiTokenVerifier | None = field(default=None)
    validator: Validator | None = None  # the controller's (worker processes); its own without one
    validation_queue: ValidationQueue | None = None  # bounds POST /v1/validate's requests in flight
    artifacts: ArtifactReader | None = None  # reads recorded artifacts back; built from the settings when not given
    mlflow_ui: str | None = field(default_factory=lambda: TrackingSettings().ui_base)  # links to MLflow runs

    def __post_init__(self) -> None:
        if self.validator is None:
            self.validator = (
                self.controller.validator
                if self.controller is not None
                else Validator(workers=self.settings.validation_workers, budget=self.settings.validation_timeout)
            )
        if self.validation_queue is None:
            workers = max(self.settings.validation_workers, 1)
            waiting = self.settings.validation_queue
            self.validation_queue = ValidationQueue(workers, 4 * workers if waiting is None else waiting)
        if self.login_limiter is None:
            self.login_limiter = RateLimiter(self.settings.login_attempts_per_minute)
        if self.login_ip_limiter is None:
            self.login_ip_limiter = RateLimiter(self.settings.login_attempts_per_minute_per_ip)
        if self.login_account_limiter is None:
            self.login_account_limiter = RateLimiter(
                self.settings.login_failures_per_account, window=self.settings.login_failure_window
            )
        if self.api_tokens is None:
            self.api_tokens = ApiTokenVerifier(self.db, self.settings.auth_cache_seconds)

    def artifact_reader(self) -> ArtifactReader:
        """Where downloads read artifacts: the attempts' files under the data directory, then the store."""
        if self.artifacts is None:
            self.artifacts = artifact_reader(self.settings)
        return self.artifacts

    def pipeline_validator(self) -> Validator:
        """Where `main.yml` files sent to the API are validated: worker processes, within a time budget."""
        assert self.validator is not None  # set by __post_init__
        return self.validator

    def validations(self) -> ValidationQueue:
        """The line `POST /v1/validate` waits in: bounded, with threads of its own (`odin.api.validation_queue`)."""
        assert self.validation_queue is not None  # set by __post_init__
        return self.validation_queue

    def require_controller(self) -> Controller:
        if self.controller is None:
            raise NoScheduler("this server serves the store read-only; it does not start, stop or edit anything")
        return self.controller

    def repo(self) -> FollowedRepo:
        controller = self.require_controller()
        if not controller.repos:
            raise NoScheduler("this server follows no repository (set ODIN_REPO)")
        return controller.repo()
