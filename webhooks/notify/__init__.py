"""Run notifications (`notify:` in main.yml, docs/notifications.md): `from_settings` builds the notifier `odin serve`
starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from odin.controller.facade import Controller, FileMissing, read_file, resolve_secret_ref
from odin.controller.settings import Settings
from odin.schema import REPO_CONFIG_FILE, Limits, load_repo_config
from odin.webhooks.notify.channels import SmtpSettings
from odin.webhooks.notify.notifier import FAILED_EVENT, SENT_EVENT, RunNotifier

__all__ = ["FAILED_EVENT", "SENT_EVENT", "RunNotifier", "SmtpSettings", "from_settings"]


def from_settings(settings: Settings, controller: Controller) -> RunNotifier:
    """The notifier, not yet started. It sends nothing for pipelines without `notify:` (theirs or `.odin.yml`'s)."""
    smtp = None
    if settings.smtp_host and settings.smtp_from:
        smtp = SmtpSettings(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            user=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
        )

    def run_url(run_id: str, pipeline: str, sha: str) -> str | None:
        if settings.public_url is None:
            return None
        return settings.run_url_template.format(
            public_url=settings.public_url.rstrip("/"), run_id=run_id, pipeline=pipeline, commit=sha
        )

    def repo_notify(repo_id: int, sha: str) -> Sequence[Mapping[str, Any]]:
        """`.odin.yml`'s `notify:` at the commit; an invalid file started nothing, so it notifies nothing either."""
        try:
            repo = controller.repo(repo_id)
            data = read_file(repo, sha, REPO_CONFIG_FILE, max_size=Limits().max_bytes)
        except (KeyError, FileMissing):
            return ()
        config = load_repo_config(data).config
        return config.notify if config is not None else ()

    return RunNotifier(
        controller.db,
        secret=resolve_secret_ref,
        run_url=run_url,
        smtp=smtp,
        repo_notify=repo_notify,
        timeout=settings.notify_timeout,
    )
