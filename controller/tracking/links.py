"""Links to MLflow runs, for the API and `odinctl show`: pure string work, so that readers of the store need neither
MLflow nor a server to answer (the client module, which imports mlflow, uses these too)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact(uri: str) -> str:
    """`uri` without the user-info part (`https://user:pass@host` -> `https://***@host`)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def run_url(base: str | None, experiment_id: str | None, run_id: str | None) -> str | None:
    """The MLflow UI's page of a run under `base` (the UI's, or the tracking server's URL), credentials removed;
    None when there is no run or `base` is not an http(s) URL (a `file:` or `databricks` URI has no page of its own)."""
    if not base or not experiment_id or not run_id or not base.startswith(("http://", "https://")):
        return None
    return f"{redact(base).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
