"""Run notifications (`notify:` in main.yml, docs/notifications.md): `from_settings` builds the notifier `odin serve`
starts."""

from __future__ import annotations

from odin.controller.facade import resolve_secret_ref
from odin.controller.settings import Settings
from odin.controller.store.db import DbEngine
from odin.webhooks.notify.channels import SmtpSettings
from odin.webhooks.notify.notifier import FAILED_EVENT, SENT_EVENT, RunNotifier

__all__ = ["FAILED_EVENT", "SENT_EVENT", "RunNotifier", "SmtpSettings", "from_settings"]


def from_settings(settings: Settings, db: DbEngine) -> RunNotifier:
    """The notifier, not yet started. It sends nothing for pipelines without `notify:`."""
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

    return RunNotifier(db, secret=resolve_secret_ref, run_url=run_url, smtp=smtp, timeout=settings.notify_timeout)
