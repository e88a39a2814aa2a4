"""Webhook secrets per followed repository: values or references, re-read often enough that rotation needs no restart.

A repository has one secret, or two while one is being rotated (the new one is configured, the provider is switched
over, then the old one is removed). Each may be given as a value or, better, as a reference (`env:NAME`,
`file:/path`): a mounted Kubernetes secret that is updated in place is picked up within `ttl` seconds. A reference that
does not resolve is logged (once per message, never the value) and left out; a repository without any usable secret
accepts no delivery at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from odin.controller.facade import SecretUnavailable, resolve_secret_ref

log = logging.getLogger("odin.webhooks")

SecretSources = Callable[[], Mapping[int, Sequence[str]]]
"""repository id -> the configured secret values or references."""


def is_reference(value: str) -> bool:
    return value.startswith(("env:", "file:"))


class WebhookSecrets:
    def __init__(self, sources: SecretSources, *, ttl: float = 2.0) -> None:
        self._sources = sources
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: dict[int, tuple[bytes, ...]] = {}
        self._expires = 0.0
        self._reported: set[str] = set()

    def current(self) -> dict[int, tuple[bytes, ...]]:
        """repository id -> its usable secrets (repositories without any are left out)."""
        now = time.monotonic()
        with self._lock:
            if now >= self._expires:
                self._cached = self._resolve()
                self._expires = now + self.ttl
            return self._cached

    def _resolve(self) -> dict[int, tuple[bytes, ...]]:
        resolved: dict[int, tuple[bytes, ...]] = {}
        for repo_id, values in self._sources().items():
            secrets: list[bytes] = []
            for value in values:
                if not is_reference(value):
                    secrets.append(value.encode("utf-8"))
                    continue
                try:
                    secrets.append(resolve_secret_ref(value).encode("utf-8"))
                except SecretUnavailable as e:
                    if e.message not in self._reported:  # the message names the reference, never a value
                        self._reported.add(e.message)
                        log.error("webhook secret of repository %s unusable: %s", repo_id, e.message)
            if secrets:
                resolved[repo_id] = tuple(dict.fromkeys(secrets))
        return resolved
